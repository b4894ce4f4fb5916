#![no_main]

use libfuzzer_sys::fuzz_target;
use limiters_fuzz::semaphore::{run, Kind};

fuzz_target!(|data: &[u8]| run(Kind::Bounded, data));
