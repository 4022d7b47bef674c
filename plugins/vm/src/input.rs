//! Pointer and keyboard input through the XTest extension.

use schemars::JsonSchema;
use serde::Deserialize;
use x11rb::protocol::xproto::ConnectionExt as _;
use x11rb::protocol::xtest::ConnectionExt as _;

use crate::desktop::Desktop;
use crate::error::{VmError, VmResult};
use crate::keymap::{Stroke, SPARE_IDLE};
use crate::keys::{self, Keysym};

// XTest fake-input event types (the core event codes).
const KEY_PRESS: u8 = 2;
const KEY_RELEASE: u8 = 3;
const BUTTON_PRESS: u8 = 4;
const BUTTON_RELEASE: u8 = 5;
const MOTION: u8 = 6;

/// Wheel buttons: 4 scrolls up, 5 scrolls down.
const WHEEL_UP: u8 = 4;
const WHEEL_DOWN: u8 = 5;

/// Intermediate pointer positions sent during a drag, so that toolkits see
/// motion between press and release.
const DRAG_STEPS: i32 = 10;

/// A mouse button.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Button {
    /// The primary button (1).
    #[default]
    Left,
    /// The middle button (2).
    Middle,
    /// The secondary button (3).
    Right,
}

impl Button {
    /// The X button number.
    pub fn number(self) -> u8 {
        match self {
            Self::Left => 1,
            Self::Middle => 2,
            Self::Right => 3,
        }
    }

    /// The name used in params and results.
    pub fn name(self) -> &'static str {
        match self {
            Self::Left => "left",
            Self::Middle => "middle",
            Self::Right => "right",
        }
    }
}

/// A key resolved to what must be pressed: the key itself and maybe Shift.
#[derive(Debug, Clone, Copy)]
pub struct KeyPress {
    stroke: Stroke,
    shift: Option<u8>,
}

impl Desktop {
    fn fake(&self, kind: u8, detail: u8, x: i16, y: i16) -> VmResult<()> {
        self.conn
            .xtest_fake_input(kind, detail, 0, self.root, x, y, 0)?;
        Ok(())
    }

    /// Moves the pointer to (`x`, `y`).
    pub fn move_to(&self, x: i16, y: i16) -> VmResult<()> {
        self.fake(MOTION, 0, x, y)
    }

    /// Presses (`down`) or releases a mouse button where the pointer is.
    pub fn button(&self, button: u8, down: bool) -> VmResult<()> {
        self.fake(
            if down { BUTTON_PRESS } else { BUTTON_RELEASE },
            button,
            0,
            0,
        )
    }

    /// Moves to (`x`, `y`) and clicks `button` `count` times.
    pub fn click(&self, x: i16, y: i16, button: Button, count: u32) -> VmResult<()> {
        self.move_to(x, y)?;
        for _ in 0..count {
            self.button(button.number(), true)?;
            self.button(button.number(), false)?;
        }
        self.sync()
    }

    /// Where the pointer is now.
    pub fn pointer(&self) -> VmResult<(i16, i16)> {
        let r = self.conn.query_pointer(self.root)?.reply()?;
        Ok((r.root_x, r.root_y))
    }

    /// Presses the left button at `from`, moves to `to` in steps, releases.
    pub fn drag(&self, from: (i16, i16), to: (i16, i16)) -> VmResult<()> {
        self.move_to(from.0, from.1)?;
        self.button(1, true)?;
        for step in 1..=DRAG_STEPS {
            let lerp = |a: i16, b: i16| {
                let v = i32::from(a) + (i32::from(b) - i32::from(a)) * step / DRAG_STEPS;
                i16::try_from(v).unwrap_or(b)
            };
            self.move_to(lerp(from.0, to.0), lerp(from.1, to.1))?;
        }
        self.button(1, false)?;
        self.sync()
    }

    /// Moves to (`x`, `y`) and turns the wheel: positive `clicks` up, negative down.
    pub fn scroll(
        &self,
        x: i16,
        y: i16,
        clicks: i64,
        check: &dyn Fn() -> VmResult<()>,
    ) -> VmResult<()> {
        self.move_to(x, y)?;
        let wheel = if clicks >= 0 { WHEEL_UP } else { WHEEL_DOWN };
        for i in 0..clicks.unsigned_abs() {
            if i % 64 == 63 {
                check()?;
            }
            self.button(wheel, true)?;
            self.button(wheel, false)?;
        }
        self.sync()
    }

    /// Prepares the keymap for a keyboard action: reads pending keymap
    /// changes and gives back keycodes borrowed long ago.
    fn keyboard_ready(&mut self) -> VmResult<()> {
        self.drain_events()?;
        self.keymap.release_idle(&self.conn, SPARE_IDLE)
    }

    fn resolve(&mut self, keysym: Keysym, what: &str) -> VmResult<KeyPress> {
        let stroke = self.keymap.stroke(&self.conn, keysym)?.ok_or_else(|| {
            VmError::Internal(format!(
                "cannot type {what}: the keymap has no spare keycode to bind it to"
            ))
        })?;
        let shift = if stroke.shift {
            Some(self.keymap.shift_keycode().ok_or_else(|| {
                VmError::Internal(format!("cannot type {what}: the keymap has no Shift key"))
            })?)
        } else {
            None
        };
        Ok(KeyPress { stroke, shift })
    }

    /// Resolves pyautogui key names; an unknown name is an error naming it.
    pub fn resolve_keys(&mut self, names: &[String], field: &str) -> VmResult<Vec<KeyPress>> {
        self.keyboard_ready()?;
        names
            .iter()
            .map(|name| {
                let keysym = keys::keysym_for_name(name).ok_or_else(|| {
                    VmError::invalid(format!(
                        "{field}: unknown key name {name:?} (use pyautogui names such as enter, tab, esc, \
                         backspace, ctrl, alt, shift, win, up, f1..f24, pageup, or a single character)"
                    ))
                })?;
                self.resolve(keysym, &format!("key {name:?}"))
            })
            .collect()
    }

    /// Presses a resolved key (Shift first when needed).
    pub fn key_down(&self, k: KeyPress) -> VmResult<()> {
        if let Some(shift) = k.shift {
            self.fake(KEY_PRESS, shift, 0, 0)?;
        }
        self.fake(KEY_PRESS, k.stroke.keycode, 0, 0)
    }

    /// Releases a resolved key (Shift last when needed).
    pub fn key_up(&self, k: KeyPress) -> VmResult<()> {
        self.fake(KEY_RELEASE, k.stroke.keycode, 0, 0)?;
        if let Some(shift) = k.shift {
            self.fake(KEY_RELEASE, shift, 0, 0)?;
        }
        Ok(())
    }

    /// Presses keys in order and releases them in reverse order.
    pub fn chord(&self, keys: &[KeyPress]) -> VmResult<()> {
        for &k in keys {
            self.key_down(k)?;
        }
        for &k in keys.iter().rev() {
            self.key_up(k)?;
        }
        self.sync()
    }

    /// Types `text` character by character.
    pub fn type_text(&mut self, text: &str, check: &dyn Fn() -> VmResult<()>) -> VmResult<()> {
        // Refuse untypable text before anything is typed; "\r\n" is one Enter.
        let chars: Vec<char> = text.chars().collect();
        let mut keysyms = Vec::with_capacity(chars.len());
        for (i, &c) in chars.iter().enumerate() {
            if c == '\r' && chars.get(i + 1) == Some(&'\n') {
                continue;
            }
            let keysym = keys::keysym_for_char(c).ok_or_else(|| {
                VmError::invalid(format!(
                    "text: character {} (U+{:04X}) at position {i} cannot be typed",
                    c.escape_debug(),
                    u32::from(c)
                ))
            })?;
            keysyms.push((c, keysym));
        }
        self.keyboard_ready()?;
        for (n, (c, keysym)) in keysyms.into_iter().enumerate() {
            if n % 64 == 63 {
                check()?;
            }
            let k = self.resolve(keysym, &format!("{:?}", c))?;
            self.key_down(k)?;
            self.key_up(k)?;
        }
        self.sync()
    }
}
