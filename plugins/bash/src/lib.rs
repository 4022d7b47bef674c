//! bash plugin (work in progress)
