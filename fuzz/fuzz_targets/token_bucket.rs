#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    limiters_fuzz::token_bucket::run(data);
    limiters_fuzz::token_bucket::run_across_the_move(data);
});
