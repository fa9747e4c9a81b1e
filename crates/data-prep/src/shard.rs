//! Splitting work across processes or machines by rank and world size.
//!
//! Every rank reads the same inputs and keeps the records whose position `i` satisfies
//! `i % world_size == rank` (lines for JSONL, rows for Parquet, files for folder readers), so a
//! Slurm job array or a Kubernetes indexed job cleans disjoint parts without coordination. The merge
//! step ([`crate::merge_shards`]) then does what needs a global view (dedup, mixing, packing).

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// This process's part of the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shard {
    /// 0-based rank.
    pub rank: usize,
    /// Number of ranks (at least 1).
    pub world_size: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Self::single()
    }
}

/// Where [`Shard::from_env`] found the rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardOrigin {
    /// `RANK` / `WORLD_SIZE` (torchrun and most launchers).
    Torchrun,
    /// `OMPI_COMM_WORLD_RANK` / `OMPI_COMM_WORLD_SIZE`.
    OpenMpi,
    /// `SLURM_ARRAY_TASK_ID` / `SLURM_ARRAY_TASK_COUNT` (job arrays, `SLURM_ARRAY_TASK_MIN` subtracted).
    SlurmArray,
    /// `SLURM_PROCID` / `SLURM_NTASKS`.
    Slurm,
    /// Nothing set: a single process.
    Single,
}

impl Shard {
    /// The whole input in one process.
    pub fn single() -> Self {
        Self {
            rank: 0,
            world_size: 1,
        }
    }

    /// A shard, checking `rank < world_size` and `world_size >= 1`.
    pub fn new(rank: usize, world_size: usize) -> Result<Self> {
        if world_size == 0 || rank >= world_size {
            return Err(Error::Config(format!(
                "invalid shard: rank {rank} of world size {world_size}"
            )));
        }
        Ok(Self { rank, world_size })
    }

    /// True when the item at global position `index` belongs to this shard.
    pub fn owns(&self, index: u64) -> bool {
        self.world_size <= 1 || index % self.world_size as u64 == self.rank as u64
    }

    /// Directory name of this shard's partial outputs, e.g. `shard-00003-of-00008`.
    pub fn dir_name(&self) -> String {
        format!("shard-{:05}-of-{:05}", self.rank, self.world_size)
    }

    /// Read rank and world size from the process environment, in the order torchrun (`RANK`,
    /// `WORLD_SIZE`), OpenMPI (`OMPI_COMM_WORLD_RANK`, `OMPI_COMM_WORLD_SIZE`), Slurm job arrays
    /// (`SLURM_ARRAY_TASK_ID` minus `SLURM_ARRAY_TASK_MIN`, `SLURM_ARRAY_TASK_COUNT`), Slurm tasks
    /// (`SLURM_PROCID`, `SLURM_NTASKS`); a single process when none is set.
    pub fn from_env() -> Result<(Self, ShardOrigin)> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`Shard::from_env`] over an arbitrary variable lookup (for tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<(Self, ShardOrigin)> {
        let num = |key: &str| -> Result<Option<usize>> {
            match get(key) {
                None => Ok(None),
                Some(v) if v.trim().is_empty() => Ok(None),
                Some(v) => v.trim().parse::<usize>().map(Some).map_err(|_| {
                    Error::Config(format!(
                        "environment variable {key}={v:?} is not a non-negative integer"
                    ))
                }),
            }
        };
        let pairs: [(&str, &str, ShardOrigin); 4] = [
            ("RANK", "WORLD_SIZE", ShardOrigin::Torchrun),
            (
                "OMPI_COMM_WORLD_RANK",
                "OMPI_COMM_WORLD_SIZE",
                ShardOrigin::OpenMpi,
            ),
            (
                "SLURM_ARRAY_TASK_ID",
                "SLURM_ARRAY_TASK_COUNT",
                ShardOrigin::SlurmArray,
            ),
            ("SLURM_PROCID", "SLURM_NTASKS", ShardOrigin::Slurm),
        ];
        for (rank_key, size_key, origin) in pairs {
            if let (Some(mut rank), Some(size)) = (num(rank_key)?, num(size_key)?) {
                if origin == ShardOrigin::SlurmArray {
                    let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
                    rank = rank.checked_sub(min).ok_or_else(|| {
                        Error::Config(format!(
                            "SLURM_ARRAY_TASK_ID {rank} is below SLURM_ARRAY_TASK_MIN {min}"
                        ))
                    })?;
                }
                return Ok((Self::new(rank, size)?, origin));
            }
        }
        Ok((Self::single(), ShardOrigin::Single))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn env_order_and_slurm_array_offset() {
        assert_eq!(Shard::from_lookup(env(&[])).expect("ok").0, Shard::single());
        let (s, o) = Shard::from_lookup(env(&[
            ("RANK", "2"),
            ("WORLD_SIZE", "4"),
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "1"),
        ]))
        .expect("ok");
        assert_eq!((s.rank, s.world_size, o), (2, 4, ShardOrigin::Torchrun));
        let (s, o) = Shard::from_lookup(env(&[
            ("OMPI_COMM_WORLD_RANK", "1"),
            ("OMPI_COMM_WORLD_SIZE", "3"),
        ]))
        .expect("ok");
        assert_eq!((s.rank, s.world_size, o), (1, 3, ShardOrigin::OpenMpi));
        // An array task also has SLURM_PROCID=0/SLURM_NTASKS=1; the array wins.
        let (s, o) = Shard::from_lookup(env(&[
            ("SLURM_ARRAY_TASK_ID", "7"),
            ("SLURM_ARRAY_TASK_MIN", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "1"),
        ]))
        .expect("ok");
        assert_eq!((s.rank, s.world_size, o), (2, 4, ShardOrigin::SlurmArray));
        let (s, o) =
            Shard::from_lookup(env(&[("SLURM_PROCID", "5"), ("SLURM_NTASKS", "6")])).expect("ok");
        assert_eq!((s.rank, s.world_size, o), (5, 6, ShardOrigin::Slurm));
    }

    #[test]
    fn bad_env_is_an_error_naming_the_variable() {
        let err = Shard::from_lookup(env(&[("RANK", "x"), ("WORLD_SIZE", "2")])).expect_err("bad");
        assert!(err.to_string().contains("RANK"), "{err}");
        assert!(Shard::from_lookup(env(&[("RANK", "4"), ("WORLD_SIZE", "4")])).is_err());
    }

    #[test]
    fn shards_partition_indices() {
        let shards: Vec<Shard> = (0..3).map(|r| Shard::new(r, 3).expect("ok")).collect();
        for i in 0..100u64 {
            assert_eq!(shards.iter().filter(|s| s.owns(i)).count(), 1);
        }
    }
}
