//! `server:` in the config file. The type is defined with the other
//! settings types (`freshen-settings`), so the config layer can read it
//! without this crate's HTTP stack.

pub use freshen_settings::ServerSettings;
pub(crate) use freshen_settings::server::token_problem;
