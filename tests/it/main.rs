//! One integration-test binary, a module per concern.

mod agent;
mod agent_model;
mod agent_process;
mod agent_safety;
mod agent_scale;
mod agent_support;
mod agent_torture;
mod aggregation_properties;
mod cli_check_config;
mod cli_decode_predict;
mod demo_consume;
mod operability;
mod producer;
mod server_api;
mod server_audit;
mod server_auth;
mod server_bad_input;
mod server_connections;
mod server_encryption;
mod server_js;
mod server_persistence;
mod server_policy;
mod server_python;
mod server_tls;
mod support;
mod vectors;
