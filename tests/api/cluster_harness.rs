#![allow(dead_code)] // each test uses a different part of the harness
//! A real Redis Cluster for a test: three primaries with one replica each,
//! redis-server processes on free loopback ports, joined by `redis-cli
//! --cluster create` exactly as an operator would. The test can kill a
//! node, start it again, and move a slot (with its keys) to another primary.

use redis::aio::MultiplexedConnection;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisCluster {
    pub nodes: Vec<ClusterNode>,
    dir: PathBuf,
}

pub struct ClusterNode {
    pub port: u16,
    child: Option<Child>,
}

/// One line of CLUSTER NODES.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub id: String,
    pub port: u16,
    pub primary: bool,
    pub failed: bool,
    pub slots: Vec<(u16, u16)>,
}

/// A node's cluster bus listens on its port + 10000, so both must be free.
fn free_port_pair() -> u16 {
    loop {
        let port = 20_000 + rand::random::<u16>() % 30_000;
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10_000) {
            return port;
        }
    }
}

impl RedisCluster {
    /// Starts six nodes and makes them a cluster of three primaries with a
    /// replica each; returns once every node sees the cluster as ok and
    /// every replica is in sync.
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "mitra-test-cluster-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cluster = Self {
            nodes: Vec::new(),
            dir,
        };
        // A port found free may be taken (by another test's connection)
        // before redis-server binds it: then another port is tried.
        let mut attempts = 0;
        while cluster.nodes.len() < 6 {
            let port = free_port_pair();
            if cluster.nodes.iter().any(|n| n.port == port) {
                continue;
            }
            cluster.nodes.push(ClusterNode { port, child: None });
            if !cluster.try_start_node(port) {
                cluster.nodes.pop();
                attempts += 1;
                assert!(attempts < 10, "redis-server did not start on 10 ports");
            }
        }
        let ports: Vec<u16> = cluster.nodes.iter().map(|n| n.port).collect();
        let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli is installed (scripts/test installs redis-server with it)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        cluster.wait_until_healthy(Duration::from_secs(30)).await;
        cluster
    }

    fn start_node(&mut self, port: u16) {
        assert!(self.try_start_node(port), "redis-server did not start");
    }

    /// Starts the node on `port`; false when it did not come up within 5 s
    /// (it exited, its port taken, or it never answered).
    fn try_start_node(&mut self, port: u16) -> bool {
        let dir = self.dir.join(port.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            // Failures are detected within a second, so a test sees a
            // replica take over in a few seconds.
            .args(["--cluster-node-timeout", "1000"])
            .args(["--cluster-replica-validity-factor", "0"])
            // The other shards keep serving while one has no primary.
            .args(["--cluster-require-full-coverage", "no"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test installs it)");
        let node = self.nodes.iter_mut().find(|n| n.port == port).unwrap();
        let child = node.child.insert(child);
        let exited = |child: &mut std::process::Child| matches!(child.try_wait(), Ok(Some(_)));
        let since = Instant::now();
        let up = loop {
            if exited(child) || since.elapsed() > Duration::from_secs(5) {
                break false;
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                // Something answered; make sure it is this node, not a
                // process that took the port first.
                std::thread::sleep(Duration::from_millis(20));
                break !exited(child);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if !up {
            let _ = child.kill();
            let _ = child.wait();
            node.child = None;
        }
        up
    }

    /// REDIS_URL for mitra: every node, comma-separated.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A plain connection to one node (no cluster routing).
    pub async fn node(&self, port: u16) -> MultiplexedConnection {
        redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// CLUSTER NODES as seen by the node on `port`.
    pub async fn topology(&self, port: u16) -> redis::RedisResult<Vec<NodeInfo>> {
        let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}"))?
            .get_multiplexed_async_connection()
            .await?;
        let text: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut conn)
            .await?;
        Ok(text.lines().filter_map(parse_node_line).collect())
    }

    /// Ports of the running nodes.
    pub fn running(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.port)
            .collect()
    }

    /// The primary serving `slot`, as the running nodes agree.
    pub async fn primary_of(&self, slot: u16) -> NodeInfo {
        let port = self.running()[0];
        self.topology(port)
            .await
            .unwrap()
            .into_iter()
            .find(|n| {
                n.primary && !n.failed && n.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))
            })
            .unwrap_or_else(|| panic!("no primary serves slot {slot}"))
    }

    /// The live primaries.
    pub async fn primaries(&self) -> Vec<NodeInfo> {
        let port = self.running()[0];
        self.topology(port)
            .await
            .unwrap()
            .into_iter()
            .filter(|n| n.primary && !n.failed && !n.slots.is_empty())
            .collect()
    }

    /// Waits until every running node answers `cluster_state:ok`, all
    /// 16384 slots are served by live primaries, and every primary has a
    /// replica that finished its initial sync.
    pub async fn wait_until_healthy(&self, limit: Duration) {
        let since = Instant::now();
        loop {
            if self.is_healthy().await {
                return;
            }
            assert!(
                since.elapsed() < limit,
                "the Redis Cluster did not become healthy"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn is_healthy(&self) -> bool {
        for port in self.running() {
            let Ok(mut conn) = redis::Client::open(format!("redis://127.0.0.1:{port}"))
                .unwrap()
                .get_multiplexed_async_connection()
                .await
            else {
                return false;
            };
            let info: String = match redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async(&mut conn)
                .await
            {
                Ok(i) => i,
                Err(_) => return false,
            };
            if !info.contains("cluster_state:ok") || !info.contains("cluster_slots_ok:16384") {
                return false;
            }
            let Ok(nodes) = self.topology(port).await else {
                return false;
            };
            // Every node agrees on which nodes have failed.
            if nodes
                .iter()
                .any(|n| n.failed && self.running().contains(&n.port))
            {
                return false;
            }
            let replication: String = match redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut conn)
                .await
            {
                Ok(r) => r,
                Err(_) => return false,
            };
            let is_primary = replication.contains("role:master");
            if is_primary && nodes.iter().any(|n| n.port == port && !n.slots.is_empty()) {
                // A primary with slots needs a replica online (state=online).
                if !replication.contains("state=online") {
                    return false;
                }
            }
            if !is_primary && !replication.contains("master_link_status:up") {
                return false;
            }
        }
        true
    }

    /// SIGKILL: the node vanishes without a word, as in a crash.
    pub fn kill(&mut self, port: u16) {
        let node = self.nodes.iter_mut().find(|n| n.port == port).unwrap();
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a killed node again with its cluster state: it rejoins as a
    /// replica of whoever took its slots over.
    pub fn restart(&mut self, port: u16) {
        self.start_node(port);
    }

    /// Waits until a live primary other than `old` serves `slot`.
    pub async fn wait_for_failover(&self, slot: u16, old: &str, limit: Duration) -> NodeInfo {
        let since = Instant::now();
        loop {
            let port = self.running()[0];
            if let Ok(nodes) = self.topology(port).await
                && let Some(n) = nodes.into_iter().find(|n| {
                    n.primary
                        && !n.failed
                        && n.id != old
                        && n.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))
                })
            {
                return n;
            }
            assert!(since.elapsed() < limit, "no replica took slot {slot} over");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Moves `slot`, with its keys, from its primary to `to`, the way
    /// `redis-cli --cluster reshard` does: IMPORTING on the target,
    /// MIGRATING on the source, MIGRATE of every key, then the new owner
    /// announced to every primary.
    pub async fn move_slot(&self, slot: u16, to: &NodeInfo) {
        let from = self.primary_of(slot).await;
        assert_ne!(from.id, to.id, "the slot is already there");
        let mut target = self.node(to.port).await;
        let mut source = self.node(from.port).await;
        let setslot = |state: &str, id: &str| {
            let mut cmd = redis::cmd("CLUSTER");
            cmd.arg("SETSLOT").arg(slot).arg(state).arg(id);
            cmd
        };
        let () = setslot("IMPORTING", &from.id)
            .query_async(&mut target)
            .await
            .unwrap();
        let () = setslot("MIGRATING", &to.id)
            .query_async(&mut source)
            .await
            .unwrap();
        loop {
            let keys: Vec<String> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(100)
                .query_async(&mut source)
                .await
                .unwrap();
            if keys.is_empty() {
                break;
            }
            let () = redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(to.port)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys)
                .query_async(&mut source)
                .await
                .unwrap();
        }
        let () = setslot("NODE", &to.id)
            .query_async(&mut target)
            .await
            .unwrap();
        let () = setslot("NODE", &to.id)
            .query_async(&mut source)
            .await
            .unwrap();
        for p in self.primaries().await {
            if p.id != from.id && p.id != to.id {
                let mut conn = self.node(p.port).await;
                let _: redis::RedisResult<()> =
                    setslot("NODE", &to.id).query_async(&mut conn).await;
            }
        }
    }
}

fn parse_node_line(line: &str) -> Option<NodeInfo> {
    let parts: Vec<&str> = line.split_whitespace().collect();
    if parts.len() < 8 {
        return None;
    }
    let address = parts[1].split('@').next()?;
    let port = address.rsplit(':').next()?.parse().ok()?;
    let flags = parts[2];
    let slots = parts[8..]
        .iter()
        .filter(|s| !s.starts_with('['))
        .filter_map(|s| match s.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => s.parse().ok().map(|n| (n, n)),
        })
        .collect();
    Some(NodeInfo {
        id: parts[0].to_owned(),
        port,
        primary: flags.contains("master"),
        failed: flags.contains("fail") && !flags.contains("fail?"),
        slots,
    })
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
