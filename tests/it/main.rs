//! The integration tests: one binary (as ripgrep has), so the AWS SDK and the sandbox are
//! linked once, and the shared fixtures live in one place (`support`). Each module is one
//! area, run against the real local servers the sandbox starts (Pebble, moto, Mosquitto,
//! the project's DNS server, the EMQX Cloud emulator).

mod support;

mod acme_reality;
mod ari;
mod bad_inputs_split;
mod check_corpus;
mod cli_tools;
mod client_pki;
mod connect_proxy;
mod deploy_emqx;
mod deploy_files;
mod doctor;
mod emqx_emulator;
mod emqx_reality;
mod faults;
mod faults_emqx;
mod first_hour;
mod github_action;
mod guide;
mod iam_policy;
mod issue;
mod issue_accounts;
mod issue_failures;
mod layering;
mod nameserver_discovery;
mod netns;
mod noop_renew;
mod r53_requests;
mod renew;
mod route53_read;
mod s3_state;
mod sandbox;
mod security;
mod security_files;
mod security_hardening;
mod security_state;
mod ux;
mod verify_probe;
mod version;
