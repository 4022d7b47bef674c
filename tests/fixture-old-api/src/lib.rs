//! Stands for a plugin built against plugin-api 1.x: it exports the version
//! symbol every plugin has, with a major version this host does not accept.

/// The plugin-api version this library claims.
#[no_mangle]
pub extern "C" fn agentflow_plugin_api_version() -> *const std::os::raw::c_char {
    c"1.0.0".as_ptr()
}
