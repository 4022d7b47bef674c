//! The accessibility tree: the X window tree as XML, one element per window
//! with its role, name, class, screen position, size and mapped state.
//! Requests for one level of the tree are pipelined (one round trip a level).

use std::fmt::Write as _;

use x11rb::cookie::Cookie;
use x11rb::protocol::xproto::{
    Atom, AtomEnum, ConnectionExt as _, GetGeometryReply, GetPropertyReply,
    GetWindowAttributesReply, MapState, TranslateCoordinatesReply, Window, WindowClass,
};

use crate::connection::XConn;
use crate::desktop::Desktop;
use crate::error::VmResult;

/// At most this many windows are described; the rest is marked truncated.
const MAX_WINDOWS: usize = 5000;

/// Longest property value read (in 32-bit units).
const PROP_LEN: u32 = 1024;

struct Atoms {
    net_wm_name: Atom,
    utf8_string: Atom,
    net_wm_window_type: Atom,
}

struct Node {
    id: Window,
    depth: usize,
    role: String,
    name: String,
    class: String,
    instance: String,
    x: i32,
    y: i32,
    width: u16,
    height: u16,
    map_state: MapState,
    override_redirect: bool,
    children: Vec<usize>,
}

type Cookies<'c> = (
    Cookie<'c, XConn, GetWindowAttributesReply>,
    Cookie<'c, XConn, GetGeometryReply>,
    Cookie<'c, XConn, TranslateCoordinatesReply>,
    Cookie<'c, XConn, GetPropertyReply>,
    Cookie<'c, XConn, GetPropertyReply>,
    Cookie<'c, XConn, GetPropertyReply>,
    Cookie<'c, XConn, GetPropertyReply>,
    Cookie<'c, XConn, x11rb::protocol::xproto::QueryTreeReply>,
);

impl Desktop {
    /// The window tree as XML.
    pub fn accessibility_tree(&self) -> VmResult<String> {
        let atoms = self.atoms()?;
        let mut nodes: Vec<Node> = Vec::new();
        let mut level: Vec<(Window, usize, Option<usize>)> = vec![(self.root, 0, None)];
        let mut truncated = false;
        while !level.is_empty() {
            let cookies = level
                .iter()
                .map(|&(w, _, _)| self.window_requests(w, &atoms))
                .collect::<VmResult<Vec<_>>>()?;
            let mut next = Vec::new();
            for ((w, depth, parent), c) in level.into_iter().zip(cookies) {
                // A window can vanish between QueryTree and these requests: skip it.
                let Some((node, children)) = collect(w, depth, c, &atoms, self)? else {
                    continue;
                };
                let idx = nodes.len();
                nodes.push(node);
                if let Some(p) = parent {
                    nodes[p].children.push(idx);
                }
                for child in children {
                    if nodes.len() + next.len() >= MAX_WINDOWS {
                        truncated = true;
                        break;
                    }
                    next.push((child, depth + 1, Some(idx)));
                }
            }
            level = next;
        }
        let mut xml = String::with_capacity(nodes.len() * 160);
        if !nodes.is_empty() {
            write_node(&mut xml, &nodes, 0, (self.width, self.height), truncated);
        }
        Ok(xml)
    }

    fn atoms(&self) -> VmResult<Atoms> {
        let c1 = self.conn.intern_atom(false, b"_NET_WM_NAME")?;
        let c2 = self.conn.intern_atom(false, b"UTF8_STRING")?;
        let c3 = self.conn.intern_atom(false, b"_NET_WM_WINDOW_TYPE")?;
        Ok(Atoms {
            net_wm_name: c1.reply()?.atom,
            utf8_string: c2.reply()?.atom,
            net_wm_window_type: c3.reply()?.atom,
        })
    }

    fn window_requests(&self, w: Window, atoms: &Atoms) -> VmResult<Cookies<'_>> {
        let c = &self.conn;
        let any = AtomEnum::ANY;
        Ok((
            c.get_window_attributes(w)?,
            c.get_geometry(w)?,
            c.translate_coordinates(w, self.root, 0, 0)?,
            c.get_property(false, w, AtomEnum::WM_NAME, any, 0, PROP_LEN)?,
            c.get_property(false, w, atoms.net_wm_name, atoms.utf8_string, 0, PROP_LEN)?,
            c.get_property(false, w, AtomEnum::WM_CLASS, AtomEnum::STRING, 0, PROP_LEN)?,
            c.get_property(false, w, atoms.net_wm_window_type, AtomEnum::ATOM, 0, 32)?,
            c.query_tree(w)?,
        ))
    }
}

/// Turns one window's replies into a node; `None` if the window is gone.
fn collect(
    w: Window,
    depth: usize,
    c: Cookies<'_>,
    atoms: &Atoms,
    desktop: &Desktop,
) -> VmResult<Option<(Node, Vec<Window>)>> {
    let (attrs, geom, pos, wm_name, net_name, class, wtype, tree) = c;
    let (Some(attrs), Some(geom), Some(pos), Some(tree)) = (
        ok(attrs.reply())?,
        ok(geom.reply())?,
        ok(pos.reply())?,
        ok(tree.reply())?,
    ) else {
        return Ok(None);
    };
    let wm_name = ok(wm_name.reply())?;
    let net_name = ok(net_name.reply())?;
    let class = ok(class.reply())?;
    let wtype = ok(wtype.reply())?;
    let name = net_name
        .filter(|p| !p.value.is_empty())
        .map(|p| String::from_utf8_lossy(&p.value).into_owned())
        .or_else(|| {
            wm_name
                .filter(|p| !p.value.is_empty())
                .map(|p| decode_text(&p, atoms))
        })
        .unwrap_or_default();
    let (instance, class) = class
        .map(|p| {
            let mut parts = p.value.split(|&b| b == 0).map(latin1);
            (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            )
        })
        .unwrap_or_default();
    let role = if depth == 0 {
        "desktop".to_string()
    } else if attrs.class == WindowClass::INPUT_ONLY {
        "input-only".to_string()
    } else {
        wtype
            .and_then(|p| p.value32().and_then(|mut v| v.next()))
            .and_then(|atom| desktop.conn.get_atom_name(atom).ok()?.reply().ok())
            .map(|r| role_from_type(&String::from_utf8_lossy(&r.name)))
            .unwrap_or_else(|| "window".to_string())
    };
    let node = Node {
        id: w,
        depth,
        role,
        name,
        class,
        instance,
        x: i32::from(pos.dst_x),
        y: i32::from(pos.dst_y),
        width: geom.width,
        height: geom.height,
        map_state: attrs.map_state,
        override_redirect: attrs.override_redirect,
        children: Vec::new(),
    };
    Ok(Some((node, tree.children)))
}

/// A reply, or `None` for an X error (the window was destroyed meanwhile);
/// connection errors propagate.
fn ok<T>(r: Result<T, x11rb::errors::ReplyError>) -> VmResult<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(x11rb::errors::ReplyError::X11Error(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `_NET_WM_WINDOW_TYPE_DIALOG` -> `dialog`; `NORMAL` is a plain `window`.
fn role_from_type(atom: &str) -> String {
    match atom.strip_prefix("_NET_WM_WINDOW_TYPE_") {
        Some("NORMAL") | None => "window".into(),
        Some("DESKTOP") => "desktop-window".into(),
        Some(t) => t.to_ascii_lowercase().replace('_', "-"),
    }
}

/// WM_NAME is STRING (Latin-1) or, from some clients, UTF8_STRING.
fn decode_text(p: &GetPropertyReply, atoms: &Atoms) -> String {
    if p.type_ == atoms.utf8_string {
        String::from_utf8_lossy(&p.value).into_owned()
    } else {
        latin1(&p.value)
    }
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

fn write_node(xml: &mut String, nodes: &[Node], i: usize, screen: (u16, u16), truncated: bool) {
    let n = &nodes[i];
    let indent = "  ".repeat(n.depth);
    let _ = write!(xml, "{indent}<{} id=\"0x{:x}\"", n.role, n.id);
    if !n.name.is_empty() {
        let _ = write!(xml, " name=\"{}\"", escape(&n.name));
    }
    if !n.class.is_empty() {
        let _ = write!(xml, " class=\"{}\"", escape(&n.class));
    }
    if !n.instance.is_empty() {
        let _ = write!(xml, " instance=\"{}\"", escape(&n.instance));
    }
    let mapped = n.map_state != MapState::UNMAPPED;
    let visible = n.map_state == MapState::VIEWABLE;
    let _ = write!(
        xml,
        " x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" mapped=\"{mapped}\" visible=\"{visible}\"",
        n.x, n.y, n.width, n.height
    );
    if n.override_redirect {
        xml.push_str(" override_redirect=\"true\"");
    }
    if n.depth == 0 {
        let _ = write!(
            xml,
            " screen_width=\"{}\" screen_height=\"{}\"",
            screen.0, screen.1
        );
        if truncated {
            let _ = write!(xml, " truncated=\"true\" max_windows=\"{MAX_WINDOWS}\"");
        }
    }
    if n.children.is_empty() {
        xml.push_str("/>\n");
        return;
    }
    xml.push_str(">\n");
    for &c in &n.children {
        write_node(xml, nodes, c, screen, false);
    }
    let _ = writeln!(xml, "{indent}</{}>", n.role);
}

/// Escapes text for an XML attribute value; characters XML 1.0 cannot carry
/// become U+FFFD, and whitespace controls are kept as character references.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_controls() {
        assert_eq!(
            escape(r#"a<b>&"c"'d'"#),
            "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;"
        );
        assert_eq!(escape("x\ny\u{1}"), "x&#10;y\u{fffd}");
        assert_eq!(escape("café 中"), "café 中");
    }

    #[test]
    fn roles_from_window_types() {
        assert_eq!(role_from_type("_NET_WM_WINDOW_TYPE_DIALOG"), "dialog");
        assert_eq!(
            role_from_type("_NET_WM_WINDOW_TYPE_DROPDOWN_MENU"),
            "dropdown-menu"
        );
        assert_eq!(role_from_type("_NET_WM_WINDOW_TYPE_NORMAL"), "window");
    }
}
