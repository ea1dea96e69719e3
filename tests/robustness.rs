//! Corrupted models must give errors, never panics: random byte flips,
//! insertions and truncations of valid models go through the whole pipeline.

mod common;

use common::onnx_models::{bytes, diamond, fork_join};
use common::Rng;
use onnx_memsched::onnx::OnnxFile;
use onnx_memsched::{plan, PlanOptions};

fn run_pipeline(data: Vec<u8>) -> bool {
    match OnnxFile::parse(data) {
        Err(_) => false,
        Ok(file) => {
            let Ok(plan) = plan(&file, &PlanOptions::default()) else { return false };
            // A plan that came back must be writable and lossless in size.
            let order: Vec<usize> = plan.order.iter().map(|v| v.index()).collect();
            assert_eq!(file.with_order(&order).len(), file.bytes.len());
            true
        }
    }
}

#[test]
fn mutated_models_never_panic() {
    let mut rng = Rng::new(99);
    let originals = [bytes(&diamond()), bytes(&fork_join(true))];
    let mut accepted = 0;
    for case in 0..1500 {
        let mut data = originals[case % 2].clone();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(data.len() as u64) as usize;
            match rng.below(4) {
                0 => data[at] ^= 1 << rng.below(8),
                1 => data[at] = rng.below(256) as u8,
                2 => data.insert(at, rng.below(256) as u8),
                _ => data.truncate(at.max(1)),
            }
        }
        let result = std::panic::catch_unwind(|| run_pipeline(data.clone()));
        match result {
            Ok(ok) => accepted += usize::from(ok),
            Err(_) => panic!("case {case}: the pipeline panicked on {data:?}"),
        }
    }
    // Some mutations (inside names, inside float data) leave a valid model.
    assert!(accepted > 0, "no mutated model was accepted: the test is not exercising the planner");
}
