//! Regions: where instances, filesystems and firewall rulesets live.

use serde::{Deserialize, Serialize};

use crate::client::{Call, Client};
use crate::error::Result;
use crate::operations;

open_enum! {
    /// A region code such as `us-east-1`. Open: regions Lambda adds later decode as
    /// [`RegionName::Unknown`] and work everywhere a region is accepted.
    pub enum RegionName {
        /// `us-east-1` (Virginia, USA).
        UsEast1 = "us-east-1",
        /// `us-east-2`.
        UsEast2 = "us-east-2",
        /// `us-west-1` (California, USA).
        UsWest1 = "us-west-1",
        /// `us-west-2` (Arizona, USA).
        UsWest2 = "us-west-2",
        /// `us-west-3` (Utah, USA).
        UsWest3 = "us-west-3",
        /// `us-south-1` (Texas, USA).
        UsSouth1 = "us-south-1",
        /// `us-south-2`.
        UsSouth2 = "us-south-2",
        /// `us-south-3`.
        UsSouth3 = "us-south-3",
        /// `us-midwest-1` (Illinois, USA).
        UsMidwest1 = "us-midwest-1",
        /// `europe-central-1` (Germany).
        EuropeCentral1 = "europe-central-1",
        /// `asia-south-1` (India).
        AsiaSouth1 = "asia-south-1",
        /// `asia-northeast-1` (Tokyo, Japan).
        AsiaNortheast1 = "asia-northeast-1",
        /// `asia-northeast-2` (Osaka, Japan).
        AsiaNortheast2 = "asia-northeast-2",
        /// `me-west-1` (Israel).
        MeWest1 = "me-west-1",
    }
}

/// A region: its code and a human description.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct Region {
    /// The code launches name, e.g. `us-east-1`.
    pub name: RegionName,
    /// The region description, e.g. `California, USA`.
    pub description: String,
}

/// The `regions` API area. Get it from [`Client::regions`].
#[derive(Debug, Clone, Copy)]
pub struct Regions<'c> {
    client: &'c Client,
}

impl Client {
    /// Regions.
    pub fn regions(&self) -> Regions<'_> {
        Regions { client: self }
    }
}

impl Regions<'_> {
    /// Every region the account can use (`GET /api/v1/regions`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// for region in client.regions().list().await? {
    ///     println!("{}: {}", region.name, region.description);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list(&self) -> Result<Vec<Region>> {
        self.client.data(Call::new(&operations::REGIONS_LIST)).await
    }
}
