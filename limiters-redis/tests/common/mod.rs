#![allow(dead_code)]

pub mod server;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use std::time::Duration;

pub use server::RedisServer;

/// A plain connection for the test's own commands.
pub async fn direct(server: &RedisServer) -> MultiplexedConnection {
    let client = redis::Client::open(server.url()).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

/// A reconnecting connection, as the limiters use by default, retrying
/// quickly so the fault tests do not wait for its back-off.
pub async fn manager(server: &RedisServer) -> ConnectionManager {
    let client = redis::Client::open(server.url()).unwrap();
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(20))
        .set_connection_timeout(Some(Duration::from_millis(200)));
    ConnectionManager::new_with_config(client, config)
        .await
        .unwrap()
}
