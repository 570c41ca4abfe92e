//! The fault campaign against a real facture process: SMTP down, storage unwritable,
//! database unreachable, slow consumer (see issue 8). Filled in by the campaign work.
