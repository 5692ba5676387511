//! Tailing files: which files (discovery), which file is which (identity), reading
//! them (reader) and cutting their bytes into records (framing). Nothing here knows
//! about Kinesis, acknowledgements or checkpoints.

pub mod discovery;
pub mod framing;
pub mod identity;
pub mod reader;
pub mod table;
