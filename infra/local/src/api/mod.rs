//! The HTTP API on localhost: API Gateway's part (the JWT authorizer, routing, the payload 2.0
//! event), then the same handlers the Lambda functions run.

pub mod gateway;
pub mod jwt;
pub mod server;
