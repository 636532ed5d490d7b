//! Store tests against real databases: every scenario runs on SQLite and on
//! PostgreSQL (127.0.0.1:5432; the PostgreSQL half fails, naming how to start
//! the server, if it is not running).

mod common;

mod history;
mod inventory;
mod open;
mod outbox;
mod processes;
mod rebuilds;
mod reports;
mod schedule;
mod vulns;
