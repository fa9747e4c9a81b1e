//! Print this process's distributed environment and the ZeRO memory of an 8B model on it:
//! `RANK=1 WORLD_SIZE=8 cargo run -p infuse-zero-shard --example dist_env`.
#![allow(clippy::print_stdout)]

use infuse_zero_shard::{DistEnv, ZeroStage, estimate_memory};

fn main() -> Result<(), infuse_zero_shard::Error> {
    let env = DistEnv::from_env()?;
    println!("{env:?}");
    for stage in [ZeroStage::Stage0, ZeroStage::Stage1, ZeroStage::Stage2, ZeroStage::Stage3] {
        let m = estimate_memory(8_030_261_248, env.world_size, stage);
        println!("Llama-3-8B {stage:?} on {} ranks: {:.1} GB model states per device", env.world_size, m.total() / 1e9);
    }
    Ok(())
}
