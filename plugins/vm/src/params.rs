//! Typed params of the tools; their JSON Schemas are what the host validates against.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::input::Button;

/// A point on the screen.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct PointParams {
    /// Horizontal position in pixels from the left edge (0 ≤ x < screen width).
    pub x: i64,
    /// Vertical position in pixels from the top edge (0 ≤ y < screen height).
    pub y: i64,
}

/// `click`: a point and a button.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ClickParams {
    /// Horizontal position in pixels.
    pub x: i64,
    /// Vertical position in pixels.
    pub y: i64,
    /// Which button to click (default left).
    #[serde(default)]
    pub button: Button,
}

/// `right_click`: an optional point (both coordinates or neither: the current pointer position).
#[derive(Debug, Deserialize, JsonSchema)]
pub struct OptionalPointParams {
    /// Horizontal position in pixels; give `y` too, or neither to click where the pointer is.
    #[serde(default)]
    pub x: Option<i64>,
    /// Vertical position in pixels; give `x` too, or neither.
    #[serde(default)]
    pub y: Option<i64>,
}

/// `drag`: press the left button at the start point, move to the end point, release.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct DragParams {
    /// Start x in pixels.
    pub start_x: i64,
    /// Start y in pixels.
    pub start_y: i64,
    /// End x in pixels.
    pub end_x: i64,
    /// End y in pixels.
    pub end_y: i64,
}

/// `scroll`: turn the wheel at a point.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ScrollParams {
    /// Horizontal position in pixels.
    pub x: i64,
    /// Vertical position in pixels.
    pub y: i64,
    /// Wheel clicks: positive scrolls up, negative scrolls down.
    pub clicks: i64,
}

/// `mouse_down` / `mouse_up`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ButtonParams {
    /// Which button (default left).
    #[serde(default)]
    pub button: Button,
}

/// `type`: text to type.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TypeParams {
    /// The text; any Unicode (characters the keymap lacks are bound to a spare key
    /// for the moment). A newline presses Enter, a tab presses Tab.
    pub text: String,
}

/// `key` / `key_down` / `key_up`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct KeyParams {
    /// A key name as pyautogui spells it (enter, tab, esc, backspace, ctrl, alt, shift, win,
    /// up, down, left, right, f1–f24, pageup, pagedown, home, end, insert, delete, space, …)
    /// or exactly one character.
    pub key: String,
}

/// `hotkey`: keys pressed in order, released in reverse order.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct HotkeyParams {
    /// Key names, e.g. `["ctrl", "shift", "t"]`.
    pub keys: Vec<String>,
}

/// `wait`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct WaitParams {
    /// Seconds to wait (0 or more).
    #[schemars(range(min = 0))]
    pub seconds: f64,
}
