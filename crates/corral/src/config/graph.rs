//! The dependency graph: start order and cycle detection.
//!
//! Edges are `depends_on` and `binds_to` alike (both mean "start after it is
//! ready"). Programs are grouped in levels rather than one flat list because
//! everything within a level can start in parallel, and `--check` can show the
//! user what will wait for what.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::Config;

/// Programs grouped by dependency depth: level 0 needs nothing, level n needs
/// only programs of lower levels. Names are sorted within a level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartOrder {
    pub levels: Vec<Vec<String>>,
}

impl StartOrder {
    /// All programs, in an order that starts each after what it requires.
    pub fn programs(&self) -> impl Iterator<Item = &str> {
        self.levels.iter().flatten().map(String::as_str)
    }

    /// Number of programs.
    pub fn len(&self) -> usize {
        self.levels.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }
}

impl fmt::Display for StartOrder {
    /// ```text
    /// start order (4 programs):
    ///   1. xvfb
    ///   2. chromium x11vnc
    ///   3. websockify
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.len();
        let noun = if n == 1 { "program" } else { "programs" };
        write!(f, "start order ({n} {noun}):")?;
        for (i, level) in self.levels.iter().enumerate() {
            write!(f, "\n  {}. {}", i + 1, level.join(" "))?;
        }
        Ok(())
    }
}

/// The start order of a validated config.
pub fn start_order(config: &Config) -> StartOrder {
    let edges = config
        .programs
        .iter()
        .map(|(name, p)| (name.clone(), p.requires().map(str::to_string).collect()))
        .collect();
    levels(&edges)
}

/// Kahn's algorithm, one level at a time. Requirements on unknown names are
/// ignored; if a cycle slipped through, its members end up in a last level
/// rather than looping forever.
pub(super) fn levels(edges: &BTreeMap<String, Vec<String>>) -> StartOrder {
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    let mut left: BTreeSet<&str> = edges.keys().map(String::as_str).collect();
    let mut out = Vec::new();
    while !left.is_empty() {
        let level: Vec<&str> = left
            .iter()
            .copied()
            .filter(|n| {
                edges[*n]
                    .iter()
                    .all(|d| placed.contains(d.as_str()) || !edges.contains_key(d))
            })
            .collect();
        let level = if level.is_empty() {
            left.iter().copied().collect()
        } else {
            level
        };
        for n in &level {
            left.remove(n);
            placed.insert(n);
        }
        out.push(level.into_iter().map(str::to_string).collect());
    }
    StartOrder { levels: out }
}

/// Every cycle a depth-first search meets, each as a closed path
/// `[a, b, a]` starting at the alphabetically first name it was entered by.
/// Edges to unknown names are ignored (they are reported separately).
pub(super) fn find_cycles(edges: &BTreeMap<String, Vec<String>>) -> Vec<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnStack,
        Done,
    }
    fn visit<'a>(
        node: &'a str,
        edges: &'a BTreeMap<String, Vec<String>>,
        marks: &mut BTreeMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
        cycles: &mut Vec<Vec<String>>,
    ) {
        marks.insert(node, Mark::OnStack);
        stack.push(node);
        for next in &edges[node] {
            match marks.get(next.as_str()) {
                None => {} // unknown name
                Some(Mark::New) => visit(next, edges, marks, stack, cycles),
                Some(Mark::OnStack) => {
                    // Back edge: the cycle is the stack from `next` up to here.
                    let from = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        stack[from..].iter().map(|s| s.to_string()).collect();
                    cycle.push(next.clone());
                    cycles.push(cycle);
                }
                Some(Mark::Done) => {}
            }
        }
        stack.pop();
        marks.insert(node, Mark::Done);
    }

    let mut marks: BTreeMap<&str, Mark> = edges.keys().map(|k| (k.as_str(), Mark::New)).collect();
    let mut cycles = Vec::new();
    for node in edges.keys() {
        if marks[node.as_str()] == Mark::New {
            visit(node, edges, &mut marks, &mut Vec::new(), &mut cycles);
        }
    }
    cycles
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edges(list: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        list.iter()
            .map(|(n, d)| (n.to_string(), d.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn levels_and_display() {
        let e = edges(&[
            ("xvfb", &[]),
            ("chromium", &["xvfb"]),
            ("x11vnc", &["xvfb"]),
            ("websockify", &["x11vnc"]),
            ("cdp", &[]),
        ]);
        let order = levels(&e);
        assert_eq!(
            order.levels,
            vec![
                vec!["cdp", "xvfb"],
                vec!["chromium", "x11vnc"],
                vec!["websockify"]
            ]
        );
        assert_eq!(
            order.to_string(),
            "start order (5 programs):\n  1. cdp xvfb\n  2. chromium x11vnc\n  3. websockify"
        );
        assert_eq!(order.programs().last(), Some("websockify"));
        assert!(find_cycles(&e).is_empty());
    }

    #[test]
    fn cycles_are_named() {
        let e = edges(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"]), ("d", &["d"])]);
        let cycles: Vec<String> = find_cycles(&e).iter().map(|c| c.join(" -> ")).collect();
        assert_eq!(cycles, vec!["a -> b -> c -> a", "d -> d"]);
        // Even with a cycle, every program is placed exactly once.
        assert_eq!(levels(&e).len(), 4);
    }

    #[test]
    fn unknown_names_do_not_break_anything() {
        let e = edges(&[("a", &["ghost"])]);
        assert!(find_cycles(&e).is_empty());
        assert_eq!(levels(&e).levels, vec![vec!["a"]]);
        assert_eq!(
            StartOrder::default().to_string(),
            "start order (0 programs):"
        );
    }
}
