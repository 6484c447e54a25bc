//! What the everyday commands print: aligned tables for people, stable JSON for programs.

use serde::Serialize;

use lambda_cloud::{Filesystem, Image, Instance, InstanceTypes, Region, SshKey};

/// A text table: headers, rows, and which columns are numbers (right-aligned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    headers: Vec<&'static str>,
    numeric: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these headers; a header ending in `>` is a right-aligned number column.
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.trim_end_matches('>')).collect(),
            numeric: headers.iter().map(|h| h.ends_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Renders with two spaces between columns and no trailing spaces.
    pub fn render(&self) -> String {
        let width = |i: usize| {
            self.rows
                .iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .chain([self.headers[i].len()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.headers.len()).map(width).collect();
        let line = |cells: Vec<&str>| {
            let mut out = String::new();
            for (i, cell) in cells.iter().enumerate() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                if i > 0 {
                    out.push_str("  ");
                }
                if self.numeric[i] {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(cell);
                } else {
                    out.push_str(cell);
                    out.push_str(&" ".repeat(pad));
                }
            }
            out.trim_end().to_owned()
        };
        let mut text = line(self.headers.clone());
        text.push('\n');
        for row in &self.rows {
            text.push_str(&line(row.iter().map(String::as_str).collect()));
            text.push('\n');
        }
        text
    }
}

/// One instance type, as `types --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TypeView {
    pub name: String,
    /// Its GPU.
    pub gpu: String,
    /// GPUs per machine.
    pub gpus: u32,
    /// US dollars per hour.
    pub price_per_hour: f64,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// RAM, GiB.
    pub memory_gib: u32,
    /// Disk, GiB.
    pub storage_gib: u32,
    /// Regions listing capacity now.
    pub regions_available: Vec<String>,
}

/// Which types `types` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeFilter {
    /// Only types with capacity somewhere.
    pub available: bool,
    /// Only types whose name or GPU contains this (case-insensitive), e.g. `h100`.
    pub gpu: Option<String>,
}

/// The types, filtered, cheapest first.
pub fn types(catalog: &InstanceTypes, filter: &TypeFilter) -> Vec<TypeView> {
    let gpu = filter.gpu.as_deref().map(str::to_lowercase);
    catalog
        .by_price()
        .into_iter()
        .filter(|item| !filter.available || !item.regions_with_capacity_available.is_empty())
        .filter(|item| {
            gpu.as_deref().is_none_or(|g| {
                item.instance_type
                    .name
                    .to_string()
                    .to_lowercase()
                    .contains(g)
                    || item
                        .instance_type
                        .gpu_description
                        .to_lowercase()
                        .contains(g)
            })
        })
        .map(|item| {
            let t = &item.instance_type;
            TypeView {
                name: t.name.to_string(),
                gpu: t.gpu_description.clone(),
                gpus: t.specs.gpus,
                price_per_hour: t.price_dollars_per_hour(),
                vcpus: t.specs.vcpus,
                memory_gib: t.specs.memory_gib,
                storage_gib: t.specs.storage_gib,
                regions_available: item
                    .regions_with_capacity_available
                    .iter()
                    .map(|r| r.name.to_string())
                    .collect(),
            }
        })
        .collect()
}

/// The `types` table.
pub fn types_table(types: &[TypeView]) -> Table {
    let mut table = Table::new(&[
        "TYPE",
        "GPU",
        "$/H>",
        "VCPU>",
        "RAM>",
        "DISK>",
        "AVAILABLE IN",
    ]);
    for t in types {
        table.row(vec![
            t.name.clone(),
            format!("{}x {}", t.gpus, t.gpu),
            format!("{:.2}", t.price_per_hour),
            t.vcpus.to_string(),
            format!("{} GiB", t.memory_gib),
            format!("{} GiB", t.storage_gib),
            if t.regions_available.is_empty() {
                "-".to_owned()
            } else {
                t.regions_available.join(", ")
            },
        ]);
    }
    table
}

/// One instance, as `instances --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceView {
    pub id: String,
    pub name: Option<String>,
    pub instance_type: String,
    pub region: String,
    pub status: String,
    /// Its public IP.
    pub ip: Option<String>,
    /// US dollars per hour.
    pub price_per_hour: f64,
    pub tags: std::collections::BTreeMap<String, String>,
}

impl From<&Instance> for InstanceView {
    fn from(i: &Instance) -> InstanceView {
        InstanceView {
            id: i.id.to_string(),
            name: i.name.clone(),
            instance_type: i.instance_type.name.to_string(),
            region: i.region.name.to_string(),
            status: i.status.to_string(),
            ip: i.ip.clone(),
            price_per_hour: i.instance_type.price_dollars_per_hour(),
            tags: i
                .tags
                .iter()
                .map(|t| (t.key.clone(), t.value.clone()))
                .collect(),
        }
    }
}

/// The `instances` table.
pub fn instances_table(instances: &[InstanceView]) -> Table {
    let mut table = Table::new(&["ID", "NAME", "TYPE", "REGION", "STATUS", "IP", "$/H>"]);
    for i in instances {
        table.row(vec![
            i.id.clone(),
            i.name.clone().unwrap_or_else(|| "-".into()),
            i.instance_type.clone(),
            i.region.clone(),
            i.status.clone(),
            i.ip.clone().unwrap_or_else(|| "-".into()),
            format!("{:.2}", i.price_per_hour),
        ]);
    }
    table
}

/// Machines as the core describes them (any provider): the `instances` table of
/// `--provider runpod`.
pub fn machines_table(machines: &[gha_runner_core::Machine]) -> Table {
    let mut table = Table::new(&["ID", "NAME", "TYPE", "REGION", "STATUS", "$/H>"]);
    for m in machines {
        table.row(vec![
            m.id.to_string(),
            m.name.clone().unwrap_or_else(|| "-".into()),
            m.instance_type.clone(),
            m.region.clone(),
            m.state.word().to_owned(),
            m.price_cents_per_hour
                .map_or_else(|| "-".into(), |c| format!("{:.2}", f64::from(c) / 100.0)),
        ]);
    }
    table
}

/// A provider's offerings (any provider): the `types` table of `--provider runpod`.
pub fn offerings_table(offerings: &[gha_runner_core::Offering]) -> Table {
    let mut table = Table::new(&["TYPE", "GPUS>", "$/H>", "WITH CAPACITY"]);
    for o in offerings {
        table.row(vec![
            o.instance_type.clone(),
            o.gpus.to_string(),
            format!("{:.2}", f64::from(o.price_cents_per_hour) / 100.0),
            if o.regions_available.is_empty() {
                "-".into()
            } else {
                o.regions_available.join(", ")
            },
        ]);
    }
    table
}

/// The `regions` table.
pub fn regions_table(regions: &[Region]) -> Table {
    let mut table = Table::new(&["REGION", "LOCATION"]);
    for r in regions {
        table.row(vec![r.name.to_string(), r.description.clone()]);
    }
    table
}

/// The `images` table.
pub fn images_table(images: &[Image]) -> Table {
    let mut table = Table::new(&["ID", "FAMILY", "VERSION", "ARCH", "REGION", "NAME"]);
    for i in images {
        table.row(vec![
            i.id.to_string(),
            i.family.clone(),
            i.version.clone(),
            i.architecture.to_string(),
            i.region.name.to_string(),
            i.name.clone(),
        ]);
    }
    table
}

/// The `ssh-keys list` table.
pub fn ssh_keys_table(keys: &[SshKey]) -> Table {
    let mut table = Table::new(&["ID", "NAME", "PUBLIC KEY"]);
    for k in keys {
        let public: String = k.public_key.chars().take(48).collect();
        table.row(vec![k.id.to_string(), k.name.clone(), public]);
    }
    table
}

/// The `filesystems list` table.
pub fn filesystems_table(filesystems: &[Filesystem]) -> Table {
    let mut table = Table::new(&["ID", "NAME", "REGION", "IN USE", "USED>", "MOUNT"]);
    for f in filesystems {
        #[allow(clippy::cast_precision_loss)]
        let used = f.bytes_used.map_or_else(
            || "-".to_owned(),
            |b| format!("{:.1} GiB", b as f64 / 1_073_741_824.0),
        );
        table.row(vec![
            f.id.to_string(),
            f.name.clone(),
            f.region.name.to_string(),
            if f.is_in_use { "yes" } else { "no" }.to_owned(),
            used,
            f.mount_point.clone(),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_numbers_go_right() {
        let mut t = Table::new(&["NAME", "$/H>"]);
        t.row(vec!["a".into(), "1.00".into()]);
        t.row(vec!["longer".into(), "12.50".into()]);
        assert_eq!(t.render(), "NAME      $/H\na        1.00\nlonger  12.50\n");
    }
}
