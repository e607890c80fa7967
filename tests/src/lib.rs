//! Helpers for the end-to-end tests (mount guards, cgroup guards, namespaced children).
