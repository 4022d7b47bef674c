//! Key names as pyautogui spells them (and a few common aliases), and
//! characters, turned into X keysyms.

/// An X keysym value.
pub type Keysym = u32;

/// `Shift_L`, pressed for characters on the second level of a key.
pub const SHIFT_L: Keysym = 0xffe1;

/// Named keys (lower case). Sources: pyautogui's X11 key table, X11 keysymdef.h.
const NAMED: &[(&str, Keysym)] = &[
    ("backspace", 0xff08),
    ("\x08", 0xff08),
    ("tab", 0xff09),
    ("\t", 0xff09),
    ("enter", 0xff0d),
    ("return", 0xff0d),
    ("\n", 0xff0d),
    ("\r", 0xff0d),
    ("clear", 0xff0b),
    ("pause", 0xff13),
    ("scrolllock", 0xff14),
    ("esc", 0xff1b),
    ("escape", 0xff1b),
    ("home", 0xff50),
    ("left", 0xff51),
    ("up", 0xff52),
    ("right", 0xff53),
    ("down", 0xff54),
    ("pgup", 0xff55),
    ("pageup", 0xff55),
    ("page_up", 0xff55),
    ("prior", 0xff55),
    ("pgdn", 0xff56),
    ("pagedown", 0xff56),
    ("page_down", 0xff56),
    ("next", 0xff56),
    ("end", 0xff57),
    ("select", 0xff60),
    ("print", 0xff61),
    ("prtsc", 0xff61),
    ("prtscr", 0xff61),
    ("prntscrn", 0xff61),
    ("printscreen", 0xff61),
    ("execute", 0xff62),
    ("insert", 0xff63),
    ("apps", 0xff67),
    ("menu", 0xff67),
    ("help", 0xff6a),
    ("modechange", 0xff7e),
    ("numlock", 0xff7f),
    ("shift", 0xffe1),
    ("shiftleft", 0xffe1),
    ("shiftright", 0xffe2),
    ("ctrl", 0xffe3),
    ("control", 0xffe3),
    ("ctrlleft", 0xffe3),
    ("ctrlright", 0xffe4),
    ("capslock", 0xffe5),
    ("meta", 0xffe7),
    ("alt", 0xffe9),
    ("altleft", 0xffe9),
    ("option", 0xffe9),
    ("optionleft", 0xffe9),
    ("altright", 0xffea),
    ("optionright", 0xffea),
    ("win", 0xffeb),
    ("winleft", 0xffeb),
    ("super", 0xffeb),
    ("command", 0xffeb),
    ("cmd", 0xffeb),
    ("winright", 0xffec),
    ("del", 0xffff),
    ("delete", 0xffff),
    ("space", 0x20),
    (" ", 0x20),
    ("multiply", 0xffaa),
    ("add", 0xffab),
    ("separator", 0xffac),
    ("subtract", 0xffad),
    ("decimal", 0xffae),
    ("divide", 0xffaf),
    ("kana", 0xff2d),
    ("kanji", 0xff21),
    ("hangul", 0xff31),
    ("hanguel", 0xff31),
    ("hanja", 0xff34),
    ("convert", 0xff23),
    ("nonconvert", 0xff22),
    ("volumemute", 0x1008_ff12),
    ("volumedown", 0x1008_ff11),
    ("volumeup", 0x1008_ff13),
    ("playpause", 0x1008_ff14),
    ("stop", 0x1008_ff15),
    ("prevtrack", 0x1008_ff16),
    ("nexttrack", 0x1008_ff17),
    ("browserhome", 0x1008_ff18),
    ("launchmail", 0x1008_ff19),
    ("browsersearch", 0x1008_ff1b),
    ("browserback", 0x1008_ff26),
    ("browserforward", 0x1008_ff27),
    ("browserstop", 0x1008_ff28),
    ("browserrefresh", 0x1008_ff29),
    ("sleep", 0x1008_ff2f),
    ("browserfavorites", 0x1008_ff30),
];

/// The keysym of a key name: a named key (case-insensitive), `f1`..`f35`,
/// `num0`..`num9`, or exactly one character (case-sensitive: `A` is shift+a).
pub fn keysym_for_name(name: &str) -> Option<Keysym> {
    let mut chars = name.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        if let Some(&(_, ks)) = NAMED
            .iter()
            .find(|(n, _)| n.len() == c.len_utf8() && n.starts_with(c))
        {
            return Some(ks);
        }
        return keysym_for_char(c);
    }
    let lower = name.trim().to_ascii_lowercase();
    if let Some(&(_, ks)) = NAMED.iter().find(|(n, _)| *n == lower) {
        return Some(ks);
    }
    if let Some(n) = lower.strip_prefix('f').and_then(|d| d.parse::<u32>().ok()) {
        // F1 is 0xffbe and F1..F35 are consecutive.
        return (1..=35).contains(&n).then(|| 0xffbe + n - 1);
    }
    if let Some(n) = lower
        .strip_prefix("num")
        .and_then(|d| d.parse::<u32>().ok())
    {
        return (n <= 9).then(|| 0xffb0 + n);
    }
    None
}

/// The keysym that types `c`: Latin-1 characters are their own keysym, a few
/// control characters are keys, anything else is a Unicode keysym
/// (0x0100_0000 + code point). `None` for control characters with no key.
pub fn keysym_for_char(c: char) -> Option<Keysym> {
    let cp = u32::from(c);
    match c {
        '\n' | '\r' => Some(0xff0d),
        '\t' => Some(0xff09),
        '\x08' => Some(0xff08),
        '\x1b' => Some(0xff1b),
        '\x7f' => Some(0xffff),
        _ if c.is_control() => None,
        _ if (0x20..=0x7e).contains(&cp) || (0xa0..=0xff).contains(&cp) => Some(cp),
        _ => Some(0x0100_0000 + cp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyautogui_names() {
        assert_eq!(keysym_for_name("enter"), Some(0xff0d));
        assert_eq!(keysym_for_name("Enter"), Some(0xff0d));
        assert_eq!(keysym_for_name("esc"), keysym_for_name("escape"));
        assert_eq!(keysym_for_name("ctrl"), Some(0xffe3));
        assert_eq!(keysym_for_name("win"), Some(0xffeb));
        assert_eq!(keysym_for_name("f1"), Some(0xffbe));
        assert_eq!(keysym_for_name("F12"), Some(0xffc9));
        assert_eq!(keysym_for_name("f24"), Some(0xffd5));
        assert_eq!(keysym_for_name("pagedown"), Some(0xff56));
        assert_eq!(keysym_for_name("num5"), Some(0xffb5));
        assert_eq!(keysym_for_name("a"), Some(0x61));
        assert_eq!(keysym_for_name("A"), Some(0x41));
        assert_eq!(keysym_for_name(" "), Some(0x20));
        assert_eq!(keysym_for_name("é"), Some(0xe9));
        assert_eq!(keysym_for_name("€"), Some(0x0100_20ac));
        assert_eq!(keysym_for_name("f0"), None);
        assert_eq!(keysym_for_name("f36"), None);
        assert_eq!(keysym_for_name("notakey"), None);
        assert_eq!(keysym_for_name(""), None);
    }

    #[test]
    fn characters() {
        assert_eq!(keysym_for_char('\n'), Some(0xff0d));
        assert_eq!(keysym_for_char('~'), Some(0x7e));
        assert_eq!(keysym_for_char('中'), Some(0x0100_4e2d));
        assert_eq!(keysym_for_char('\u{1}'), None);
    }
}
