//! The server's keyboard mapping as seen by the plugin: which keycode (and
//! whether Shift) produces a keysym, and spare keycodes borrowed for keysyms
//! the keymap lacks (the xdotool technique: bind an unused keycode with
//! ChangeKeyboardMapping, press it, give it back later).
//!
//! A borrowed keycode is given back only once it has been idle for a while,
//! not right after its release: clients look the keysym up when they process
//! the event, possibly after the plugin has moved on, and must still find it.

use std::time::{Duration, Instant};

use x11rb::connection::Connection;
use x11rb::protocol::xproto::ConnectionExt as _;

use crate::connection::XConn;
use crate::error::VmResult;
use crate::keys::{Keysym, SHIFT_L};

/// A borrowed keycode is given back after this long without use.
pub const SPARE_IDLE: Duration = Duration::from_secs(2);

/// A borrowed keycode used more recently than this is not re-bound to another
/// keysym until this much time has passed (clients may not have read it yet).
const REBIND_GRACE: Duration = Duration::from_millis(200);

/// How to produce a keysym: press `keycode`, with Shift held if `shift`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stroke {
    /// The keycode to press.
    pub keycode: u8,
    /// Whether Shift must be held (the keysym is on the key's second level).
    pub shift: bool,
}

#[derive(Debug, Clone)]
struct Spare {
    keycode: u8,
    bound: Option<Keysym>,
    last_used: Instant,
}

/// The core keyboard mapping plus the spare keycodes.
#[derive(Debug)]
pub struct Keymap {
    min_keycode: u8,
    per: usize,
    syms: Vec<Keysym>,
    spares: Vec<Spare>,
}

impl Keymap {
    /// Reads the server's mapping.
    pub fn load(conn: &XConn) -> VmResult<Self> {
        let mut map = Self {
            min_keycode: conn.setup().min_keycode,
            per: 0,
            syms: Vec::new(),
            spares: Vec::new(),
        };
        map.reload(conn)?;
        Ok(map)
    }

    /// Re-reads the mapping (after a MappingNotify), keeping the bookkeeping
    /// of spare keycodes that still carry what the plugin bound to them.
    pub fn reload(&mut self, conn: &XConn) -> VmResult<()> {
        let setup = conn.setup();
        let (min, max) = (setup.min_keycode, setup.max_keycode);
        let reply = conn.get_keyboard_mapping(min, max - min + 1)?.reply()?;
        self.min_keycode = min;
        self.per = usize::from(reply.keysyms_per_keycode).max(1);
        self.syms = reply.keysyms;
        let old = std::mem::take(&mut self.spares);
        let now = Instant::now();
        for kc in min..=max {
            let row = self.row(kc);
            let empty = row.iter().all(|&s| s == 0);
            let kept = old.iter().find(|s| s.keycode == kc);
            match kept {
                Some(s) if s.bound.is_some() && row.first().copied() == s.bound => {
                    self.spares.push(s.clone())
                }
                _ if empty => self.spares.push(Spare {
                    keycode: kc,
                    bound: None,
                    last_used: kept.map_or(now, |s| s.last_used),
                }),
                _ => {}
            }
        }
        Ok(())
    }

    fn row(&self, keycode: u8) -> &[Keysym] {
        let i = usize::from(keycode - self.min_keycode) * self.per;
        self.syms.get(i..i + self.per).unwrap_or(&[])
    }

    fn set_row(&mut self, keycode: u8, first_two: [Keysym; 2]) {
        let i = usize::from(keycode - self.min_keycode) * self.per;
        if let Some(row) = self.syms.get_mut(i..i + self.per) {
            row.fill(0);
            for (slot, s) in row.iter_mut().zip(first_two) {
                *slot = s;
            }
        }
    }

    /// Where `keysym` already is: level 1 (no Shift) anywhere wins over level 2.
    pub fn lookup(&self, keysym: Keysym) -> Option<Stroke> {
        let count = self.syms.len() / self.per;
        for (col, shift) in [(0, false), (1, true)] {
            if col >= self.per {
                break;
            }
            for k in 0..count {
                if self.syms[k * self.per + col] == keysym {
                    let keycode = self.min_keycode.checked_add(u8::try_from(k).ok()?)?;
                    return Some(Stroke { keycode, shift });
                }
            }
        }
        None
    }

    /// The keycode of the left Shift key.
    pub fn shift_keycode(&self) -> Option<u8> {
        self.lookup(SHIFT_L).map(|s| s.keycode)
    }

    /// How to type `keysym`, binding a spare keycode to it when the keymap lacks it.
    /// `None` when there is no spare keycode at all.
    pub fn stroke(&mut self, conn: &XConn, keysym: Keysym) -> VmResult<Option<Stroke>> {
        if let Some(stroke) = self.lookup(keysym) {
            if let Some(s) = self.spares.iter_mut().find(|s| s.keycode == stroke.keycode) {
                s.last_used = Instant::now();
            }
            return Ok(Some(stroke));
        }
        // A free spare, else the least recently used one.
        let Some(idx) = self
            .spares
            .iter()
            .enumerate()
            .min_by_key(|(_, s)| (s.bound.is_some(), s.last_used))
            .map(|(i, _)| i)
        else {
            return Ok(None);
        };
        let since = self.spares[idx].last_used.elapsed();
        if self.spares[idx].bound.is_some() && since < REBIND_GRACE {
            // Let clients catch up with the events that used the old binding.
            conn.get_input_focus()?.reply()?;
            std::thread::sleep(REBIND_GRACE - since);
        }
        let keycode = self.spares[idx].keycode;
        conn.change_keyboard_mapping(1, keycode, 2, &[keysym, keysym])?;
        self.set_row(keycode, [keysym, keysym]);
        self.spares[idx].bound = Some(keysym);
        self.spares[idx].last_used = Instant::now();
        Ok(Some(Stroke {
            keycode,
            shift: false,
        }))
    }

    /// Gives back borrowed keycodes unused for `idle`.
    pub fn release_idle(&mut self, conn: &XConn, idle: Duration) -> VmResult<()> {
        let stale: Vec<usize> = (0..self.spares.len())
            .filter(|&i| {
                self.spares[i].bound.is_some() && self.spares[i].last_used.elapsed() >= idle
            })
            .collect();
        for i in stale {
            let keycode = self.spares[i].keycode;
            conn.change_keyboard_mapping(1, keycode, 2, &[0, 0])?;
            self.set_row(keycode, [0, 0]);
            self.spares[i].bound = None;
        }
        Ok(())
    }

    /// How many keycodes are currently borrowed.
    pub fn borrowed(&self) -> usize {
        self.spares.iter().filter(|s| s.bound.is_some()).count()
    }

    /// How many keycodes can be borrowed in all.
    pub fn spare_count(&self) -> usize {
        self.spares.len()
    }
}
