//! Global order and the position index.
//!
//! A waiting call's place is its [`OrderKey`]: (priority class, log index of its Enqueue).
//! The log index gives one total order of arrivals across every site, immune to clock skew.
//! Each queue keeps its waiting calls in an [`OrderTree`], an order-statistic treap, so the
//! position of any caller is one O(log n) walk. Node priorities are a hash of the key, so
//! the tree's shape is a pure function of its contents: no randomness, same on every node.
//!
//! Several calls can share one key: callers that overflow into a queue in the same apply
//! (a Tick timing several out) all take that apply's index. The tree is therefore keyed by
//! (key, call number): equal keys keep every call, in call-number order (their arrival).

use serde::{Deserialize, Serialize};

/// Priority classes. Any u8 works; lower is served first.
pub const PRIORITY_VIP: u8 = 0;
pub const PRIORITY_NORMAL: u8 = 5;
pub const PRIORITY_LOW: u8 = 10;

/// Largest log index that fits beside the priority in a packed key.
pub const ORDER_SEQ_MAX: u64 = (1 << 56) - 1;

/// A caller's place in line: lower sorts first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OrderKey {
    pub priority: u8,
    /// Log index of the command that gave the call its place (its Enqueue, or a Reassign
    /// that did not keep age).
    pub seq: u64,
}

impl OrderKey {
    pub fn packed(self) -> u64 {
        debug_assert!(self.seq <= ORDER_SEQ_MAX);
        (u64::from(self.priority) << 56) | (self.seq & ORDER_SEQ_MAX)
    }
    pub fn unpack(packed: u64) -> Self {
        Self { priority: (packed >> 56) as u8, seq: packed & ORDER_SEQ_MAX }
    }
}

const NIL: u32 = u32::MAX;

/// A tree entry's place: the packed [`OrderKey`] above the value (the call number).
type Slot = u128;

fn slot(key: OrderKey, value: u64) -> Slot {
    (Slot::from(key.packed()) << 64) | Slot::from(value)
}

#[derive(Debug, Clone)]
struct Node {
    key: Slot,
    heap_priority: u32,
    left: u32,
    right: u32,
    size: u32,
}

/// Order-statistic treap of (packed [`OrderKey`], `u64` value: the call number) entries.
#[derive(Debug, Clone)]
pub struct OrderTree {
    nodes: Vec<Node>,
    free: Vec<u32>,
    root: u32,
}

impl Default for OrderTree {
    fn default() -> Self {
        Self { nodes: Vec::new(), free: Vec::new(), root: NIL }
    }
}

fn mix(slot: Slot) -> u32 {
    let mut x = (slot >> 64) as u64 ^ (slot as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // splitmix64 finaliser: a fixed function of the key, so shapes are reproducible.
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (x ^ (x >> 31)) as u32
}

impl OrderTree {
    pub fn len(&self) -> usize {
        self.size(self.root) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.root == NIL
    }

    fn size(&self, n: u32) -> u32 {
        if n == NIL {
            0
        } else {
            self.nodes[n as usize].size
        }
    }

    fn update(&mut self, n: u32) {
        let (l, r) = (self.nodes[n as usize].left, self.nodes[n as usize].right);
        self.nodes[n as usize].size = 1 + self.size(l) + self.size(r);
    }

    /// Splits `n` into (keys < key, keys >= key).
    fn split(&mut self, n: u32, key: Slot) -> (u32, u32) {
        if n == NIL {
            return (NIL, NIL);
        }
        if self.nodes[n as usize].key < key {
            let (l, r) = self.split(self.nodes[n as usize].right, key);
            self.nodes[n as usize].right = l;
            self.update(n);
            (n, r)
        } else {
            let (l, r) = self.split(self.nodes[n as usize].left, key);
            self.nodes[n as usize].left = r;
            self.update(n);
            (l, n)
        }
    }

    /// Merges two trees where every key of `a` is below every key of `b`.
    fn merge(&mut self, a: u32, b: u32) -> u32 {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.nodes[a as usize].heap_priority >= self.nodes[b as usize].heap_priority {
            let m = self.merge(self.nodes[a as usize].right, b);
            self.nodes[a as usize].right = m;
            self.update(a);
            a
        } else {
            let m = self.merge(a, self.nodes[b as usize].left);
            self.nodes[b as usize].left = m;
            self.update(b);
            b
        }
    }

    /// Inserts `key` with `value`; returns false (and changes nothing) if that pair is
    /// already present.
    pub fn insert(&mut self, key: OrderKey, value: u64) -> bool {
        let k = slot(key, value);
        if self.contains(key, value) {
            return false;
        }
        let node = Node { key: k, heap_priority: mix(k), left: NIL, right: NIL, size: 1 };
        let id = match self.free.pop() {
            Some(id) => {
                self.nodes[id as usize] = node;
                id
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        let (l, r) = self.split(self.root, k);
        let lm = self.merge(l, id);
        self.root = self.merge(lm, r);
        true
    }

    /// Removes `key` with `value`; false if that pair is not present.
    pub fn remove(&mut self, key: OrderKey, value: u64) -> bool {
        let k = slot(key, value);
        if !self.contains(key, value) {
            return false;
        }
        let (l, r) = self.split(self.root, k);
        let (m, r2) = match k.checked_add(1) {
            Some(next) => self.split(r, next),
            None => (r, NIL),
        };
        debug_assert!(m != NIL && self.size(m) == 1);
        self.free.push(m);
        self.root = self.merge(l, r2);
        if self.root == NIL {
            // Empty again: give the arena back so a drained queue holds no memory.
            self.nodes.clear();
            self.free.clear();
        }
        true
    }

    pub fn contains(&self, key: OrderKey, value: u64) -> bool {
        self.rank(key, value).is_some()
    }

    /// 1-based position of `key` with `value` (number of entries at or before it), if present.
    pub fn rank(&self, key: OrderKey, value: u64) -> Option<usize> {
        let k = slot(key, value);
        let mut n = self.root;
        let mut before = 0usize;
        while n != NIL {
            let node = &self.nodes[n as usize];
            match k.cmp(&node.key) {
                std::cmp::Ordering::Less => n = node.left,
                std::cmp::Ordering::Greater => {
                    before += self.size(node.left) as usize + 1;
                    n = node.right;
                }
                std::cmp::Ordering::Equal => return Some(before + self.size(node.left) as usize + 1),
            }
        }
        None
    }

    pub fn first(&self) -> Option<(OrderKey, u64)> {
        self.iter().next()
    }

    /// In-order iteration, head of the line first.
    pub fn iter(&self) -> OrderIter<'_> {
        let mut it = OrderIter { tree: self, stack: Vec::new() };
        it.push_left(self.root);
        it
    }
}

pub struct OrderIter<'a> {
    tree: &'a OrderTree,
    stack: Vec<u32>,
}

impl OrderIter<'_> {
    fn push_left(&mut self, mut n: u32) {
        while n != NIL {
            self.stack.push(n);
            n = self.tree.nodes[n as usize].left;
        }
    }
}

impl Iterator for OrderIter<'_> {
    type Item = (OrderKey, u64);
    fn next(&mut self) -> Option<Self::Item> {
        let n = self.stack.pop()?;
        let node = &self.tree.nodes[n as usize];
        let item = (OrderKey::unpack((node.key >> 64) as u64), node.key as u64);
        let right = node.right;
        self.push_left(right);
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn priority_sorts_before_arrival() {
        let mut t = OrderTree::default();
        t.insert(OrderKey { priority: PRIORITY_NORMAL, seq: 1 }, 1);
        t.insert(OrderKey { priority: PRIORITY_VIP, seq: 9 }, 9);
        t.insert(OrderKey { priority: PRIORITY_LOW, seq: 2 }, 2);
        t.insert(OrderKey { priority: PRIORITY_NORMAL, seq: 5 }, 5);
        let values: Vec<u64> = t.iter().map(|(_, v)| v).collect();
        assert_eq!(values, vec![9, 1, 5, 2]);
        assert_eq!(t.rank(OrderKey { priority: PRIORITY_NORMAL, seq: 5 }, 5), Some(3));
        assert_eq!(t.rank(OrderKey { priority: PRIORITY_NORMAL, seq: 6 }, 6), None);
        assert!(!t.insert(OrderKey { priority: PRIORITY_NORMAL, seq: 5 }, 5));
        assert!(t.remove(OrderKey { priority: PRIORITY_VIP, seq: 9 }, 9));
        assert!(!t.remove(OrderKey { priority: PRIORITY_VIP, seq: 9 }, 9));
        assert_eq!(t.rank(OrderKey { priority: PRIORITY_NORMAL, seq: 5 }, 5), Some(2));
    }

    #[test]
    fn calls_sharing_a_key_all_keep_their_place_in_call_order() {
        // Two callers overflowing in one apply take the same key.
        let shared = OrderKey { priority: PRIORITY_LOW, seq: 17_920 };
        let mut t = OrderTree::default();
        assert!(t.insert(shared, 14));
        assert!(t.insert(shared, 13));
        assert!(t.insert(OrderKey { priority: PRIORITY_VIP, seq: 16_640 }, 3));
        assert_eq!(t.iter().map(|(_, v)| v).collect::<Vec<_>>(), vec![3, 13, 14]);
        assert!(t.remove(shared, 13));
        assert_eq!(t.rank(shared, 14), Some(2));
        assert_eq!(t.len(), 2);
        assert!(t.insert(OrderKey { priority: u8::MAX, seq: ORDER_SEQ_MAX }, u64::MAX));
        assert!(t.remove(OrderKey { priority: u8::MAX, seq: ORDER_SEQ_MAX }, u64::MAX));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        /// The treap agrees with a BTreeSet reference on contents, order and rank.
        #[test]
        fn matches_reference(ops in proptest::collection::vec((any::<bool>(), 0u8..4, 0u64..64, 0u64..4), 0..200)) {
            let mut tree = OrderTree::default();
            let mut reference = BTreeSet::new();
            for (insert, priority, seq, value) in ops {
                let key = OrderKey { priority, seq };
                if insert {
                    prop_assert_eq!(tree.insert(key, value), reference.insert((key, value)));
                } else {
                    prop_assert_eq!(tree.remove(key, value), reference.remove(&(key, value)));
                }
                prop_assert_eq!(tree.len(), reference.len());
            }
            let got: Vec<_> = tree.iter().collect();
            let want: Vec<_> = reference.iter().copied().collect();
            prop_assert_eq!(&got, &want);
            for (i, (k, v)) in want.iter().enumerate() {
                prop_assert_eq!(tree.rank(*k, *v), Some(i + 1));
            }
        }
    }
}
