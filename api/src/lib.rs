//! fipd library.
