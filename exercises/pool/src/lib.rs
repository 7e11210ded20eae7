//! Placeholder: this exercise is written in a later issue.
