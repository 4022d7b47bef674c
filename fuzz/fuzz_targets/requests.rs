//! One input, first byte chooses: request body decoding (every native and
//! compat body type), tool name resolution, params validation against the
//! default plugins' schemas, or config parsing. None may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    agentflow_host::fuzzing::one_input(data);
});
