//! (Tests of this tier arrive with its issue.)
