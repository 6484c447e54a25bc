//! A cache on the provider's persistent volumes (Lambda's filesystems): one volume per region,
//! named for the repository, made on first use and mounted at launch. The boot keeps the
//! GitHub runner and the agent there, keyed by SHA-256 and checked on every use, and jobs get
//! their package and model caches there (`UV_CACHE_DIR`, `PIP_CACHE_DIR`, `HF_HOME`,
//! `TORCH_HOME`): the second machine of a region downloads neither the runner nor the job's
//! wheels again.
//!
//! A volume is mounted only in its own region (Lambda answers a launch naming a filesystem of
//! another region with `global/invalid-parameters`, "filesystem … is in …"): choosing a cache
//! restricts the candidates to the regions where its volume exists or could be made, and says
//! so before anything is launched.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Field, InputError};
use crate::plan::Candidate;
use crate::provider::CloudProvider;
pub use crate::provider::Volume;

/// Lambda's rule for a filesystem's name (`createFilesystem`: `^[a-zA-Z]+[0-9a-zA-Z-]*$`, at
/// most 60 characters).
const MAX_NAME: usize = 60;

/// The cache a launch asked for: the name its volumes share, one per region
/// (`<name>-<region>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRequest {
    name: String,
}

impl CacheRequest {
    /// Reads the `cache_filesystem` input: empty or `false` for none; `true` for volumes named
    /// for `repository` (`owner/name`: `gha-cache-<owner>-<name>`); any other value is the
    /// name itself. Region names are appended, so the name leaves room for them.
    pub fn parse(
        input: &str,
        repository: &str,
        field: impl Into<Field>,
    ) -> Result<Option<CacheRequest>, InputError> {
        let field = field.into();
        let name = match input.trim() {
            "" | "false" => return Ok(None),
            "true" => {
                let mut name = String::from("gha-cache");
                for part in repository.split('/').filter(|p| !p.is_empty()) {
                    name.push('-');
                    name.extend(part.chars().map(|c| {
                        if c.is_ascii_alphanumeric() {
                            c.to_ascii_lowercase()
                        } else {
                            '-'
                        }
                    }));
                }
                // Room for the longest region name (`europe-central-1`, `asia-northeast-1`).
                name.truncate(MAX_NAME - 1 - 20);
                name.trim_end_matches('-').to_owned()
            }
            given => given.to_owned(),
        };
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && name.len() <= MAX_NAME - 1 - 20;
        if !valid {
            return Err(InputError::new(
                field,
                format!(
                    "{name:?} cannot name a filesystem: letters, digits and `-`, starting with a \
                     letter, at most {} characters (the region is appended); or `true` for one \
                     named for the repository",
                    MAX_NAME - 1 - 20
                ),
            ));
        }
        Ok(Some(CacheRequest { name }))
    }

    /// The name the cache's volumes share.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name of the cache's volume in `region`.
    pub fn volume_name(&self, region: &str) -> String {
        format!("{}-{region}", self.name)
    }
}

/// What was found or done for the cache in one region, before launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegionCache {
    /// The region's volume was there.
    Found(Volume),
    /// It was not, and was made now.
    Made(Volume),
    /// The region cannot have the cache, and is not launched in: why.
    Unusable(String),
}

/// The cache's volume per candidate region, and what was said about each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheVolumes {
    /// Per region, in the candidates' order.
    pub regions: Vec<(String, RegionCache)>,
}

impl CacheVolumes {
    /// The volume to mount on a machine in `region`, if the region has one.
    pub fn volume(&self, region: &str) -> Option<&Volume> {
        self.regions
            .iter()
            .find(|(r, _)| r == region)
            .and_then(|(_, cache)| match cache {
                RegionCache::Found(volume) | RegionCache::Made(volume) => Some(volume),
                RegionCache::Unusable(_) => None,
            })
    }

    /// `candidates` in regions that have the cache, in their order.
    pub fn usable(&self, candidates: &[Candidate]) -> Vec<Candidate> {
        candidates
            .iter()
            .filter(|c| self.volume(&c.region).is_some())
            .cloned()
            .collect()
    }
}

impl fmt::Display for CacheVolumes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (region, cache) in &self.regions {
            match cache {
                RegionCache::Found(v) => writeln!(f, "{region}: cache {} found", v.name)?,
                RegionCache::Made(v) => writeln!(f, "{region}: cache {} made", v.name)?,
                RegionCache::Unusable(why) => writeln!(f, "{region}: not used: {why}")?,
            }
        }
        Ok(())
    }
}

/// Why no candidate can have the cache.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no candidate region can have the cache {name}:\n{volumes}Name regions where it can be made, \
     or leave out the cache"
)]
pub struct NoCacheRegion {
    /// The cache's name.
    pub name: String,
    /// What was found in each region.
    pub volumes: CacheVolumes,
}

/// Finds or makes the cache's volume in every region of `candidates` (one listing, and one
/// create per region that has none): a region whose volume is in another region, or where
/// none can be made, is not launched in. Fails when no region is left, or when the volumes
/// cannot be listed.
pub async fn prepare(
    provider: &dyn CloudProvider,
    cache: &CacheRequest,
    candidates: &[Candidate],
) -> Result<CacheVolumes, String> {
    let existing: BTreeMap<String, Volume> = provider
        .volumes()
        .await
        .map_err(|e| format!("cannot list {}'s filesystems: {e}", provider.name()))?
        .into_iter()
        .map(|v| (v.name.clone(), v))
        .collect();
    let mut volumes = CacheVolumes::default();
    for candidate in candidates {
        let region = &candidate.region;
        if volumes.regions.iter().any(|(r, _)| r == region) {
            continue;
        }
        let name = cache.volume_name(region);
        let found = match existing.get(&name) {
            Some(volume) if &volume.region == region => RegionCache::Found(volume.clone()),
            Some(volume) => RegionCache::Unusable(format!(
                "{name} is in {}, and a filesystem is mounted only in its own region (delete \
                 it, or name another cache)",
                volume.region
            )),
            None => match provider.create_volume(&name, region).await {
                Ok(volume) => RegionCache::Made(volume),
                Err(error) => RegionCache::Unusable(format!("cannot make {name}: {error}")),
            },
        };
        volumes.regions.push((region.clone(), found));
    }
    if volumes.usable(candidates).is_empty() {
        return Err(NoCacheRegion {
            name: cache.name().to_owned(),
            volumes,
        }
        .to_string());
    }
    Ok(volumes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_names_are_valid_filesystem_names_with_room_for_the_region() {
        let named = CacheRequest::parse("true", "Octo-Org/GPU_train.v2", "cache")
            .unwrap()
            .unwrap();
        assert_eq!(named.name(), "gha-cache-octo-org-gpu-train-v2");
        assert_eq!(
            named.volume_name("us-east-1"),
            "gha-cache-octo-org-gpu-train-v2-us-east-1"
        );
        let long = CacheRequest::parse("true", &format!("o/{}", "r".repeat(100)), "cache")
            .unwrap()
            .unwrap();
        assert!(long.volume_name("europe-central-1").len() <= MAX_NAME);
        assert_eq!(CacheRequest::parse("", "o/r", "cache").unwrap(), None);
        assert_eq!(CacheRequest::parse("false", "o/r", "cache").unwrap(), None);
        assert_eq!(
            CacheRequest::parse("team-cache", "o/r", "cache")
                .unwrap()
                .unwrap()
                .volume_name("us-west-1"),
            "team-cache-us-west-1"
        );
        let error = CacheRequest::parse("9 lives", "o/r", "cache_filesystem").unwrap_err();
        assert!(error.to_string().contains("cache_filesystem"), "{error}");
        assert!(
            error.to_string().contains("starting with a letter"),
            "{error}"
        );
    }
}
