//! Redeploying in one account: `up`, `down`, `up`, `down`, twice in a row. Idempotency tokens
//! must be new for every create: a service that remembers a token (ACM for an hour, EC2 for
//! its client tokens) answers a repeated one with what it made the first time, which a `down`
//! has since deleted.

use crate::inventory::{self, Inventory};
use crate::support::Stack;

#[tokio::test]
async fn up_down_up_down_twice_converges_each_time_and_leaves_nothing() {
    let stack = Stack::new().await;
    let expected = inventory::expected(&stack).await;
    let mut tokens = std::collections::BTreeSet::new();
    for cycle in 1..=4 {
        let run = stack.run(&["up", "--yes"]).await;
        assert_eq!(
            run.code, 0,
            "up #{cycle} failed:\nstdout:\n{}\nstderr:\n{}",
            run.stdout, run.stderr
        );
        inventory::assert_exact(
            &Inventory::read(&stack).await,
            &expected,
            &format!("after up #{cycle}"),
        );
        // Every resource's create carried a token no earlier create used.
        for (id, record) in stack.state()["resources"].as_object().unwrap() {
            let token = record["token"].as_str().unwrap_or_default().to_string();
            assert!(
                token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()),
                "{id}: token {token:?} is not 32 hex digits"
            );
            assert!(
                tokens.insert(token.clone()),
                "{id}: up #{cycle} reused the token {token}"
            );
        }
        let run = stack.run(&["down", "--yes"]).await;
        assert_eq!(
            run.code, 0,
            "down #{cycle} failed:\nstdout:\n{}\nstderr:\n{}",
            run.stdout, run.stderr
        );
        inventory::assert_empty(
            &Inventory::read(&stack).await,
            &format!("after down #{cycle}"),
        );
    }
}
