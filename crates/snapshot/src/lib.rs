//! corral-snapshot: complete, live storage-state snapshots of the
//! persistent Chromium profile — cookies, localStorage and IndexedDB of
//! every origin that holds any, not only the open tabs — in Playwright's
//! `storageState` format, harvested over raw CDP and served behind a bearer
//! token. See `docs/snapshot.md`.

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
