//! dreamgym
