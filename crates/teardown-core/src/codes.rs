//! Every error code a dead-letter record can carry (filled below).
