//! The twin of kube-proxy: a Service's virtual IP that picks a backend once per TCP connection
//! (at random, as kube-proxy's iptables mode does) and then forwards bytes. HTTP/2 multiplexes every
//! RPC over that one connection, which is why a ClusterIP Service pins a gRPC client to one pod.

use std::{
    net::SocketAddr,
    sync::{Arc, RwLock},
};

use rand::seq::IndexedRandom;
use tokio::net::{TcpListener, TcpStream};

/// A virtual IP with its current backends; stops when dropped.
pub struct VirtualIp {
    addr: SocketAddr,
    backends: Arc<RwLock<Vec<SocketAddr>>>,
    task: tokio::task::JoinHandle<()>,
}

impl VirtualIp {
    pub async fn start(addr: SocketAddr, backends: Vec<SocketAddr>) -> std::io::Result<VirtualIp> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let backends = Arc::new(RwLock::new(backends));
        let shared = backends.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let chosen = shared
                    .read()
                    .expect("backends lock")
                    .choose(&mut rand::rng())
                    .copied();
                match chosen {
                    // No ready endpoint: kube-proxy rejects the connection.
                    None => drop(client),
                    Some(backend) => {
                        tokio::spawn(forward(client, backend));
                    }
                }
            }
        });
        Ok(VirtualIp {
            addr,
            backends,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the backends; existing connections stay where they are, as with kube-proxy.
    pub fn set_backends(&self, backends: Vec<SocketAddr>) {
        *self.backends.write().expect("backends lock") = backends;
    }
}

impl Drop for VirtualIp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(mut client: TcpStream, backend: SocketAddr) {
    let _ = client.set_nodelay(true);
    let Ok(mut upstream) = TcpStream::connect(backend).await else {
        return;
    };
    let _ = upstream.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}
