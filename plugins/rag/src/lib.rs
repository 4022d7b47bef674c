//! rag plugin (work in progress)
