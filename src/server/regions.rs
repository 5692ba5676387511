//! One namespace of streams per region, as on AWS: a request works in the region its
//! credential scope names (`Credential=KEY/DATE/REGION/kinesis/aws4_request`), so
//! `--region us-east-1` streams are invisible to a client configured for `eu-west-1`,
//! and ARNs name the region they live in. The server's `--region` is the home region:
//! the one for requests whose scope names none (or one that cannot be a region).
//!
//! Each region is a [`Store`] of its own. With `--data-dir`, the home region keeps
//! its files at the top of the directory (as before regions existed) and any other
//! region under `regions/NAME/`, reopened at start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use super::clock::Clock;
use super::error::{KinesisError, OpResult};
use super::store::persist::Persist;
use super::store::{Store, StoreConfig};

/// Every region's store, made on first use.
#[derive(Debug)]
pub struct Regions {
    home: Store,
    config: StoreConfig,
    clock: Clock,
    data_dir: Option<PathBuf>,
    key_file: Option<PathBuf>,
    others: RwLock<BTreeMap<String, Store>>,
}

/// Whether `name` can be an AWS region name (`us-east-1`, `cn-north-1`, `us-gov-west-1`).
pub fn is_region(name: &str) -> bool {
    (4..=32).contains(&name.len())
        && name.contains('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

impl Regions {
    /// The home region's store, and the other regions found in `data_dir`.
    pub fn open(
        home: Store,
        clock: Clock,
        data_dir: Option<&Path>,
        key_file: Option<&Path>,
    ) -> std::io::Result<Regions> {
        let regions = Regions {
            config: home.config().clone(),
            home,
            clock,
            data_dir: data_dir.map(Path::to_path_buf),
            key_file: key_file.map(Path::to_path_buf),
            others: RwLock::new(BTreeMap::new()),
        };
        if let Some(dir) = data_dir {
            match std::fs::read_dir(dir.join("regions")) {
                Ok(entries) => {
                    for entry in entries {
                        let name = entry?.file_name().to_string_lossy().into_owned();
                        if is_region(&name) && name != regions.config.region {
                            let store = regions.make(&name)?;
                            regions.write().insert(name, store);
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(regions)
    }

    pub fn home(&self) -> &Store {
        &self.home
    }

    /// The store of `region`, made (and its directory created) on first use.
    pub fn store(&self, region: Option<&str>) -> OpResult<Store> {
        let region = match region {
            Some(region) if is_region(region) && region != self.config.region => region,
            _ => return Ok(self.home.clone()),
        };
        if let Some(store) = self.read().get(region) {
            return Ok(store.clone());
        }
        let mut others = self.write();
        if let Some(store) = others.get(region) {
            return Ok(store.clone());
        }
        let store = self.make(region).map_err(|e| {
            KinesisError::internal(format!("cannot open the data of region {region}: {e}"))
        })?;
        others.insert(region.to_owned(), store.clone());
        Ok(store)
    }

    /// Every region's store, home first.
    pub fn all(&self) -> Vec<Store> {
        std::iter::once(self.home.clone())
            .chain(self.read().values().cloned())
            .collect()
    }

    fn make(&self, region: &str) -> std::io::Result<Store> {
        let persist = match &self.data_dir {
            Some(dir) => {
                let dir = dir.join("regions").join(region);
                std::fs::create_dir_all(&dir)?;
                Some(Persist::new(&dir, self.key_file.as_deref())?)
            }
            None => None,
        };
        let config = StoreConfig {
            region: region.to_owned(),
            ..self.config.clone()
        };
        Store::new(config, self.clock.clone(), persist)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Store>> {
        self.others.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Store>> {
        self.others.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_names_are_told_from_other_text() {
        for good in [
            "us-east-1",
            "eu-west-2",
            "us-gov-west-1",
            "cn-north-1",
            "ap-southeast-5",
        ] {
            assert!(is_region(good), "{good}");
        }
        for bad in [
            "",
            "us",
            "US-EAST-1",
            "us_east_1",
            "-us-1",
            "../x",
            "us-east-1/",
        ] {
            assert!(!is_region(bad), "{bad}");
        }
    }

    #[test]
    fn each_region_has_its_own_streams_and_arns_and_unknown_scopes_go_home() {
        let clock = Clock::frozen();
        let home = Store::new(StoreConfig::default(), clock.clone(), None)
            .unwrap_or_else(|e| panic!("{e}"));
        let regions = Regions::open(home, clock, None, None).unwrap_or_else(|e| panic!("{e}"));
        let west = regions
            .store(Some("eu-west-1"))
            .unwrap_or_else(|e| panic!("{e}"));
        west.create_stream(
            "s",
            1,
            crate::server::store::stream::StreamMode::Provisioned,
            Default::default(),
            true,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            west.arn("s"),
            "arn:aws:kinesis:eu-west-1:000000000000:stream/s"
        );
        assert!(regions.home().stream("s").is_err());
        let again = regions
            .store(Some("eu-west-1"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(again.stream("s").is_ok());
        let home = regions
            .store(Some("not a region"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(home.stream("s").is_err());
        assert_eq!(regions.all().len(), 2);
    }
}
