//! Baseline programs live in `src/bin/`.
