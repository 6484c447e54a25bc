//! Machine images instances can boot from.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::client::{Call, Client};
use crate::error::Result;
use crate::ids::ImageId;
use crate::operations;
use crate::regions::Region;

open_enum! {
    /// A CPU architecture. GH200 machines are `arm64`.
    pub enum ImageArchitecture {
        /// x86-64.
        X86_64 = "x86_64",
        /// 64-bit ARM.
        Arm64 = "arm64",
    }
}

/// An image in one region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct Image {
    /// The image's id.
    pub id: ImageId,
    /// When it was created.
    pub created_time: Timestamp,
    /// When it was last updated.
    pub updated_time: Timestamp,
    /// A human-readable identifier, e.g. `ubuntu-24.04.01`.
    pub name: String,
    /// More about the image.
    pub description: String,
    /// The family, e.g. `ubuntu-lts`; launching by family picks the newest.
    pub family: String,
    /// The version, e.g. `24.04.01`.
    pub version: String,
    /// The CPU architecture it runs on.
    pub architecture: ImageArchitecture,
    /// The region it is available in.
    pub region: Region,
}

/// The image to launch an instance with: by id or by family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ImageSpecification {
    /// A specific image.
    Id {
        /// The image's id.
        id: ImageId,
    },
    /// The newest image of a family.
    Family {
        /// The family, e.g. `lambda-stack-24-04`: its latest image for the type's architecture.
        family: String,
    },
}

impl ImageSpecification {
    /// A specific image by id.
    pub fn id(id: impl Into<ImageId>) -> Self {
        ImageSpecification::Id { id: id.into() }
    }

    /// The newest image of a family.
    pub fn family(family: impl Into<String>) -> Self {
        ImageSpecification::Family {
            family: family.into(),
        }
    }
}

/// The `images` API area. Get it from [`Client::images`].
#[derive(Debug, Clone, Copy)]
pub struct Images<'c> {
    client: &'c Client,
}

impl Client {
    /// Machine images.
    pub fn images(&self) -> Images<'_> {
        Images { client: self }
    }
}

impl Images<'_> {
    /// Every image, per region (`GET /api/v1/images`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// for image in client.images().list().await? {
    ///     println!("{} {} {}", image.family, image.version, image.region.name);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list(&self) -> Result<Vec<Image>> {
        self.client.data(Call::new(&operations::IMAGES_LIST)).await
    }
}
