//! corral-snapshot: complete, live storage-state snapshots of the
//! persistent Chromium profile — cookies, localStorage and IndexedDB of
//! every origin that holds any, not only the open tabs — in Playwright's
//! `storageState` format, harvested over raw CDP and served behind a bearer
//! token. See `docs/snapshot.md`.
//!
//! Modules: [`serve`] is the HTTP listener (`/api/snapshot`, `/healthz`,
//! the periodic harvest); [`harvest`] takes one snapshot; [`origins`]
//! decides which origins it covers (profile on disk, cookies, open pages);
//! [`page`] reads and writes one origin's storage from a scratch page;
//! [`cdp`] is the small CDP client they use (one WebSocket, calls matched by
//! id); [`state`] is Playwright's `storageState` format; [`restore`] writes
//! a snapshot back into a browser; [`store`] writes files atomically.

pub mod cdp;
pub mod frames;
pub mod harvest;
pub mod journal;
pub mod locate;
pub mod origins;
pub mod page;
pub mod restore;
pub mod serve;
pub mod state;
pub mod store;
