//! openraft's own storage conformance suite, run on the RocksDB log store
//! and state machine.

use openraft::testing::{StoreBuilder, Suite};
use skiff_store::testing::{LogStore, StateMachine, open_storage};
use skiff_store::types::{StorageError, TypeConfig};

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (log, sm) = open_storage(dir.path()).expect("open storage");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    Suite::test_all(RocksBuilder).expect("storage conformance suite");
}
