//! The local ARM simulator: a faithful local Azure for MUA, used by the demo and the tests.
