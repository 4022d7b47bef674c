//! How long and how big each measurement is, in full and quick mode.

use std::time::Duration;

/// One group of measurements, each with its own server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    Host,
    Mcp,
    Isolated,
    Cluster,
    Bash,
    Rollouts,
    Vm,
    Rag,
    Faiss,
    Hotplug,
    Soak,
    Trajectories,
    Metrics,
}

/// Durations and sizes of one run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `"full"` or `"quick"`.
    pub mode: &'static str,
    pub scenarios: Vec<Scenario>,
    /// Each throughput/latency measurement (after a short untimed warm-up).
    pub window: Duration,
    /// Untimed requests before each measurement window.
    pub warmup: Duration,
    /// A figure and its baseline are measured in this many alternating slices.
    pub rounds: usize,
    /// The "many sessions for a while" runs of bash (100 sessions) and vm (20).
    pub endurance: Duration,
    /// The mixed reliability soak.
    pub soak: Duration,
    /// Repetitions of one-off timings (session start, hot-plug, crash to
    /// serving again).
    pub repeats: usize,
    /// Passages in the synthetic rag corpus indexed with dense embeddings.
    pub rag_passages: u64,
    /// Passages in the synthetic rag corpus indexed for BM25 only.
    pub rag_lexical_passages: u64,
    /// Documents sent to `rag:index` for its throughput.
    pub rag_index_docs: usize,
    /// Sessions created to measure memory per vm session.
    pub vm_memory_sessions: usize,
    /// Synthetic 384-dimensional vectors in the Faiss indexes (and passages
    /// in their corpus); the size is 1 000 000.
    pub faiss_vectors: u64,
    /// Queries searched one by one in the HNSW and IVF indexes, per side.
    pub faiss_queries: usize,
    /// The same in the flat index, whose every query reads all the vectors.
    pub faiss_flat_queries: usize,
    /// Each `rag:search` throughput over a Faiss index, split in two slices
    /// alternating with the other configuration's.
    pub faiss_window: Duration,
}

impl Plan {
    /// The committed configuration: BENCHMARKS.md comes from this.
    pub fn full() -> Self {
        Self {
            mode: "full",
            scenarios: all(),
            window: Duration::from_secs(5),
            warmup: Duration::from_millis(500),
            rounds: 5,
            endurance: Duration::from_secs(30),
            soak: Duration::from_secs(60),
            repeats: 5,
            rag_passages: 1_000,
            rag_lexical_passages: 100_000,
            rag_index_docs: 64,
            vm_memory_sessions: 4,
            faiss_vectors: 1_000_000,
            faiss_queries: 1000,
            faiss_flat_queries: 300,
            faiss_window: Duration::from_secs(30),
        }
    }

    /// Short runs with the same table shape, for iteration.
    pub fn quick() -> Self {
        Self {
            mode: "quick",
            scenarios: all(),
            window: Duration::from_secs(1),
            warmup: Duration::from_millis(200),
            rounds: 2,
            endurance: Duration::from_secs(5),
            soak: Duration::from_secs(10),
            repeats: 3,
            rag_passages: 200,
            rag_lexical_passages: 10_000,
            rag_index_docs: 32,
            vm_memory_sessions: 2,
            faiss_vectors: 100_000,
            faiss_queries: 200,
            faiss_flat_queries: 100,
            faiss_window: Duration::from_secs(4),
        }
    }
}

fn all() -> Vec<Scenario> {
    vec![
        Scenario::Host,
        Scenario::Mcp,
        Scenario::Isolated,
        Scenario::Cluster,
        Scenario::Bash,
        Scenario::Rollouts,
        Scenario::Vm,
        Scenario::Rag,
        Scenario::Faiss,
        Scenario::Hotplug,
        Scenario::Soak,
        Scenario::Trajectories,
        Scenario::Metrics,
    ]
}
