//! vm plugin (work in progress)
