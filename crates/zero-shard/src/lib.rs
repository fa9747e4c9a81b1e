//! Distributed training support for infuse.
//!
//! `infuse-zero-shard` owns how several processes and devices cooperate:
//!
//! - [`DistEnv`]: rank, world size, local rank and rendezvous address resolved from the launcher's
//!   environment in the order torchrun (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`,
//!   `MASTER_ADDR`, `MASTER_PORT`), OpenMPI (`OMPI_COMM_WORLD_*`), Slurm (`SLURM_PROCID`/`SLURM_NTASKS`,
//!   or a job array's `SLURM_ARRAY_TASK_ID`/`SLURM_ARRAY_TASK_COUNT`), else a single process. Data
//!   preparation uses it to shard inputs; trainers use it to pick their device and data slice.
//! - [`ZeroStage`] and [`estimate_memory`]: the per-device memory of model states under ZeRO stages
//!   0-3 (mixed-precision Adam: 2Ψ weights + 2Ψ gradients + 12Ψ optimizer states, partitioned as
//!   DeepSpeed does), so a recipe can be checked against a GPU before it runs.
//!
//! Planned here (training issue): collectives (in-process ranks on one machine; NCCL through burn's
//! CUDA backend where available), ZeRO stage 1-3 partitioning of optimizer state, gradients and
//! parameters over burn modules, and CPU/NVMe offload of optimizer state.

use serde::{Deserialize, Serialize};

/// Errors of the distributed crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A launcher variable holds something that is not a valid number, or rank >= world size.
    #[error("invalid distributed environment: {variable}={value}: {message}")]
    InvalidEnv {
        /// The variable.
        variable: String,
        /// Its value.
        value: String,
        /// What is wrong.
        message: String,
    },
}

/// Which launcher the environment came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Launcher {
    /// `torchrun` / torch.distributed variables.
    Torchrun,
    /// OpenMPI `mpirun`.
    OpenMpi,
    /// A Slurm job array (one task per array index).
    SlurmArray,
    /// Slurm `srun` tasks.
    Slurm,
    /// Nothing set: one process.
    Single,
}

/// This process's place in a distributed job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistEnv {
    /// Global rank, `0..world_size`.
    pub rank: usize,
    /// Number of processes.
    pub world_size: usize,
    /// Rank on this node (device index).
    pub local_rank: usize,
    /// Processes on this node.
    pub local_world_size: usize,
    /// Rendezvous host, when the launcher gives one.
    pub master_addr: Option<String>,
    /// Rendezvous port, when the launcher gives one.
    pub master_port: Option<u16>,
    /// Where the values came from.
    pub launcher: Launcher,
}

impl Default for DistEnv {
    fn default() -> Self {
        Self::single()
    }
}

impl DistEnv {
    /// One process.
    pub fn single() -> Self {
        Self {
            rank: 0,
            world_size: 1,
            local_rank: 0,
            local_world_size: 1,
            master_addr: None,
            master_port: None,
            launcher: Launcher::Single,
        }
    }

    /// Resolve from the process environment.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Resolve from any variable lookup (testable without touching the process environment).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let num = |k: &str| -> Result<Option<usize>, Error> {
            match get(k) {
                None => Ok(None),
                Some(v) => v.trim().parse::<usize>().map(Some).map_err(|_| Error::InvalidEnv {
                    variable: k.to_owned(),
                    value: v.clone(),
                    message: "not a non-negative integer".into(),
                }),
            }
        };
        let port = match get("MASTER_PORT") {
            None => None,
            Some(v) => Some(v.trim().parse::<u16>().map_err(|_| Error::InvalidEnv {
                variable: "MASTER_PORT".into(),
                value: v.clone(),
                message: "not a port number".into(),
            })?),
        };
        let addr = get("MASTER_ADDR");
        let env = if let (Some(rank), Some(world)) = (num("RANK")?, num("WORLD_SIZE")?) {
            let local_rank = num("LOCAL_RANK")?.unwrap_or(rank);
            let local_world = num("LOCAL_WORLD_SIZE")?.unwrap_or(world);
            Self { rank, world_size: world, local_rank, local_world_size: local_world, master_addr: addr, master_port: port, launcher: Launcher::Torchrun }
        } else if let (Some(rank), Some(world)) = (num("OMPI_COMM_WORLD_RANK")?, num("OMPI_COMM_WORLD_SIZE")?) {
            Self {
                rank,
                world_size: world,
                local_rank: num("OMPI_COMM_WORLD_LOCAL_RANK")?.unwrap_or(0),
                local_world_size: num("OMPI_COMM_WORLD_LOCAL_SIZE")?.unwrap_or(1),
                master_addr: addr,
                master_port: port,
                launcher: Launcher::OpenMpi,
            }
        } else if let (Some(task), Some(count)) = (num("SLURM_ARRAY_TASK_ID")?, num("SLURM_ARRAY_TASK_COUNT")?) {
            let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            Self {
                rank: task.saturating_sub(min),
                world_size: count,
                local_rank: 0,
                local_world_size: 1,
                master_addr: addr,
                master_port: port,
                launcher: Launcher::SlurmArray,
            }
        } else if let (Some(rank), Some(world)) = (num("SLURM_PROCID")?, num("SLURM_NTASKS")?) {
            Self {
                rank,
                world_size: world,
                local_rank: num("SLURM_LOCALID")?.unwrap_or(0),
                local_world_size: num("SLURM_NTASKS_PER_NODE")?.unwrap_or(1),
                master_addr: addr,
                master_port: port,
                launcher: Launcher::Slurm,
            }
        } else {
            Self::single()
        };
        if env.world_size == 0 || env.rank >= env.world_size {
            return Err(Error::InvalidEnv {
                variable: "rank/world size".into(),
                value: format!("{}/{}", env.rank, env.world_size),
                message: format!("rank must be < world size ({:?} launcher)", env.launcher),
            });
        }
        Ok(env)
    }

    /// True for rank 0 (the process that writes shared outputs and logs).
    pub fn is_main(&self) -> bool {
        self.rank == 0
    }

    /// The items `i` with `i % world_size == rank` of `0..n`: this process's share of `n` work items.
    pub fn shard_range(&self, n: usize) -> impl Iterator<Item = usize> + '_ {
        (self.rank..n).step_by(self.world_size)
    }
}

/// ZeRO stages (DeepSpeed's definitions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ZeroStage {
    /// Plain data parallelism: every rank holds everything.
    Stage0,
    /// Optimizer states partitioned.
    Stage1,
    /// Optimizer states and gradients partitioned.
    Stage2,
    /// Optimizer states, gradients and parameters partitioned.
    Stage3,
}

/// Per-device memory of model states, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MemoryEstimate {
    /// Half-precision weights.
    pub params: f64,
    /// Half-precision gradients.
    pub grads: f64,
    /// f32 master weights + Adam moments.
    pub optimizer: f64,
}

impl MemoryEstimate {
    /// Sum.
    pub fn total(&self) -> f64 {
        self.params + self.grads + self.optimizer
    }
}

/// Model-state memory per device for `num_params` parameters trained with mixed-precision Adam on
/// `world_size` ranks (ZeRO paper, §5: 2Ψ + 2Ψ + KΨ with K = 12), activations excluded.
pub fn estimate_memory(num_params: u64, world_size: usize, stage: ZeroStage) -> MemoryEstimate {
    let p = num_params as f64;
    let n = world_size.max(1) as f64;
    let (params, grads, optimizer) = match stage {
        ZeroStage::Stage0 => (2.0 * p, 2.0 * p, 12.0 * p),
        ZeroStage::Stage1 => (2.0 * p, 2.0 * p, 12.0 * p / n),
        ZeroStage::Stage2 => (2.0 * p, 2.0 * p / n, 12.0 * p / n),
        ZeroStage::Stage3 => (2.0 * p / n, 2.0 * p / n, 12.0 * p / n),
    };
    MemoryEstimate { params, grads, optimizer }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> Result<DistEnv, Error> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        DistEnv::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn torchrun_wins_over_slurm() {
        let e = env(&[("RANK", "3"), ("WORLD_SIZE", "8"), ("LOCAL_RANK", "1"), ("SLURM_PROCID", "0"), ("SLURM_NTASKS", "2"), ("MASTER_PORT", "29500")])
            .expect("valid");
        assert_eq!((e.rank, e.world_size, e.local_rank, e.launcher), (3, 8, 1, Launcher::Torchrun));
        assert_eq!(e.master_port, Some(29500));
    }

    #[test]
    fn slurm_array_and_empty() {
        let e = env(&[("SLURM_ARRAY_TASK_ID", "5"), ("SLURM_ARRAY_TASK_COUNT", "10"), ("SLURM_ARRAY_TASK_MIN", "1")]).expect("valid");
        assert_eq!((e.rank, e.world_size, e.launcher), (4, 10, Launcher::SlurmArray));
        assert_eq!(env(&[]).expect("single"), DistEnv::single());
    }

    #[test]
    fn bad_values_are_named() {
        let err = env(&[("RANK", "x"), ("WORLD_SIZE", "2")]).expect_err("bad rank");
        assert!(err.to_string().contains("RANK=x"), "{err}");
        let err = env(&[("RANK", "2"), ("WORLD_SIZE", "2")]).expect_err("rank >= world");
        assert!(err.to_string().contains("2/2"), "{err}");
    }

    #[test]
    fn shards_cover_every_item_once() {
        let n = 17;
        let mut seen = vec![0; n];
        for rank in 0..4 {
            let e = DistEnv { rank, world_size: 4, ..DistEnv::single() };
            e.shard_range(n).for_each(|i| seen[i] += 1);
        }
        assert!(seen.iter().all(|&c| c == 1));
    }

    #[test]
    fn zero_paper_example() {
        // ZeRO paper Figure 1: Ψ = 7.5B, N = 64: 120 GB, 31.4 GB, 16.6 GB, 1.9 GB.
        let gb = |s| estimate_memory(7_500_000_000, 64, s).total() / 1e9;
        assert!((gb(ZeroStage::Stage0) - 120.0).abs() < 0.1);
        assert!((gb(ZeroStage::Stage1) - 31.4).abs() < 0.1);
        assert!((gb(ZeroStage::Stage2) - 16.6).abs() < 0.1);
        assert!((gb(ZeroStage::Stage3) - 1.875).abs() < 0.01);
    }
}
