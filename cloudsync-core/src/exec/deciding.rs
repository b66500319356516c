//! The decisions of a pass, in march order. Most items are decided without I/O (sizes and
//! modtimes from the listings): while no decision waits for I/O they pass straight through,
//! with no future, allocation or wake-up of their own. An item whose decision needs a hash the
//! listings did not give is decided as a future, `checkers` of them at a time; the items after
//! it queue behind it so the order stays the march's.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, Stream, StreamExt};

use crate::plan::decide::{Decided, Now, Rules, decide};
use crate::plan::equal::Comparator;
use crate::plan::march::Item;

/// The stream of decisions for `items` (see the module docs).
pub(crate) struct Decisions<S> {
    items: Option<S>,
    cmp: Arc<Comparator>,
    rules: Rules,
    /// Decisions in march order, the first of them waiting for I/O.
    waiting: FuturesOrdered<BoxFuture<'static, Decided>>,
    /// Most decisions waiting at once.
    checkers: usize,
}

impl<S> Decisions<S> {
    pub(crate) fn new(items: S, cmp: Arc<Comparator>, rules: Rules, checkers: usize) -> Self {
        Decisions {
            items: Some(items),
            cmp,
            rules,
            waiting: FuturesOrdered::new(),
            checkers: checkers.max(1),
        }
    }
}

impl<S: Stream<Item = Item> + Unpin> Stream for Decisions<S> {
    type Item = Decided;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Decided>> {
        let this = self.get_mut();
        while this.waiting.len() < this.checkers {
            let Some(items) = this.items.as_mut() else {
                break;
            };
            let item = match items.poll_next_unpin(cx) {
                Poll::Ready(Some(item)) => item,
                Poll::Ready(None) => {
                    this.items = None;
                    break;
                }
                Poll::Pending => break,
            };
            match decide(&this.cmp, &this.rules, item) {
                // Nothing ahead of it: out at once.
                Now::Decided(decided) if this.waiting.is_empty() => {
                    return Poll::Ready(Some(decided));
                }
                Now::Decided(decided) => this
                    .waiting
                    .push_back(Box::pin(futures::future::ready(decided))),
                Now::NeedsHash(pair) => {
                    let cmp = this.cmp.clone();
                    this.waiting
                        .push_back(Box::pin(async move { pair.decide(&cmp).await }));
                }
            }
        }
        match this.waiting.poll_next_unpin(cx) {
            Poll::Ready(Some(decided)) => Poll::Ready(Some(decided)),
            // Nothing waits: done when the items are, else the items' waker is registered.
            Poll::Ready(None) if this.items.is_none() => Poll::Ready(None),
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{HashKind, Hashes};
    use crate::plan::equal::CompareOptions;
    use crate::plan::{Action, Mode, Reason};
    use crate::remote::Remote;
    use crate::testkit::MemFs;
    use crate::{Entry, RemotePath, WriteMeta, bytes_stream};

    /// With `--checksum`, items whose listings carry the hash are decided at once and the
    /// others read it: every decision is right and they come out in the march's order, with
    /// fewer checkers than waiting items.
    #[tokio::test]
    async fn decisions_keep_the_march_order_whether_or_not_they_need_io() {
        let (src, dst): (Arc<dyn Remote>, Arc<dyn Remote>) = (
            Arc::new(MemFs::new("memfs://s")),
            Arc::new(MemFs::new("memfs://d")),
        );
        let mut items = Vec::new();
        let mut want = Vec::new();
        for i in 0..40 {
            let path = RemotePath::new(&format!("f{i:02}")).unwrap();
            let same = i % 2 == 0;
            let (a, b) = (
                format!("a{i:02}"),
                if same {
                    format!("a{i:02}")
                } else {
                    format!("b{i:02}")
                },
            );
            src.write(&path, bytes_stream(a), WriteMeta::default())
                .await
                .unwrap();
            dst.write(&path, bytes_stream(b), WriteMeta::default())
                .await
                .unwrap();
            let mut s: Entry = src.stat(&path).await.unwrap();
            let mut t: Entry = dst.stat(&path).await.unwrap();
            // Every third item has no hash in its listing and needs I/O.
            for (e, r) in [(&mut s, &src), (&mut t, &dst)] {
                e.hashes = Hashes::default();
                if i % 3 != 0 {
                    let h = r.hash(&path, HashKind::Md5).await.unwrap();
                    e.hashes.insert(HashKind::Md5, h);
                }
            }
            want.push((
                path.clone(),
                if same {
                    (Action::Skip, Reason::Identical)
                } else {
                    (Action::Update, Reason::HashDiffers)
                },
            ));
            items.push(Item::Pair {
                path,
                src: Some(s),
                dst: Some(t),
                src_included: true,
                dst_included: true,
            });
        }
        let opts = CompareOptions {
            checksum: true,
            ..Default::default()
        };
        let cmp = Arc::new(Comparator::new(src, dst, opts));
        assert_eq!(cmp.hash, Some(HashKind::Md5));
        let rules = Rules {
            mode: Mode::Copy,
            delete_excluded: false,
            create_empty_src_dirs: false,
        };
        let got: Vec<_> = Decisions::new(futures::stream::iter(items), cmp, rules, 2)
            .map(|d| {
                let d = d.unwrap().unwrap();
                (d.path, (d.action, d.reason))
            })
            .collect()
            .await;
        assert_eq!(got, want);
    }
}
