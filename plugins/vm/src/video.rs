//! A session's screen recorded to a video file while the session lives
//! (session config `"record_video": true` with `video_path`): `ffmpeg`
//! grabbing the session's display (x11grab), H.264 in a fragmented MP4.
//!
//! Fragmented, so the file plays even if the host dies before the session
//! ends (everything up to the last fragment, at most [`KEYFRAME_EVERY`]
//! frames old); at the end ffmpeg is asked to stop with `q` on its standard
//! input and finishes the file itself. It runs outside the sandbox, as
//! Xvfb does, forked by the session's spawner: it dies with the session (or
//! the host). The plugin only writes where `video_path` says; the host that
//! sets it (an AgentFlow host, in the session's trajectory) keeps the file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::display::find_in_path;
use crate::error::{VmError, VmResult};
use crate::spawner::Spawner;
use crate::sys;

/// Frames per second: enough to follow a desktop session, light on CPU.
const FPS: u32 = 5;
/// A keyframe (and an MP4 fragment) every 2 s.
const KEYFRAME_EVERY: u32 = 2 * FPS;
/// How long ffmpeg may take to start writing the file (it starts once the
/// first frame is grabbed and encoded; loading ffmpeg from a cold disk is
/// most of it).
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long ffmpeg may take to finish the file once asked to stop.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The ffmpeg recording a session's screen.
pub struct Video {
    child: Child,
    path: PathBuf,
}

impl Video {
    /// Starts recording display `:display` (`size` pixels) to `path`.
    pub fn start(
        spawner: &Spawner,
        display: u32,
        xauthority: &Path,
        size: (u32, u32),
        path: &Path,
        log: &Path,
    ) -> VmResult<Self> {
        let ffmpeg = find_in_path("ffmpeg", None).ok_or_else(|| {
            VmError::Unavailable(
                "record_video needs ffmpeg, which is not on PATH; install the Debian package \
                 `ffmpeg` (apt-get install ffmpeg)"
                    .into(),
            )
        })?;
        let log_file = std::fs::File::create(log)
            .map_err(|e| VmError::Internal(format!("cannot create {}: {e}", log.display())))?;
        let mut cmd = Command::new(ffmpeg);
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("XAUTHORITY", xauthority)
            .args(["-hide_banner", "-nostats", "-loglevel", "error"])
            .args(["-f", "x11grab", "-draw_mouse", "1"])
            .args(["-framerate", &FPS.to_string()])
            .args(["-video_size", &format!("{}x{}", size.0, size.1)])
            .args(["-i", &format!(":{display}")])
            // H.264 wants even sides; the screen may have odd ones.
            .args(["-vf", "crop=trunc(iw/2)*2:trunc(ih/2)*2"])
            .args(["-c:v", "libx264", "-preset", "ultrafast", "-crf", "30"])
            .args(["-pix_fmt", "yuv420p", "-threads", "1"])
            .args(["-g", &KEYFRAME_EVERY.to_string()])
            .args(["-movflags", "+frag_keyframe+empty_moov+default_base_moof"])
            .arg("-y")
            .arg(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(log_file);
        let child = spawner
            .spawn(cmd)
            .map_err(|e| VmError::Internal(format!("cannot start ffmpeg: {e}")))?;
        let mut video = Self {
            child,
            path: path.to_path_buf(),
        };
        // Once the file has its first bytes, the screen is being recorded:
        // the session starts then, so no action of it is missed.
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = video.child.try_wait() {
                let said = std::fs::read_to_string(log).unwrap_or_default();
                return Err(VmError::Internal(format!(
                    "ffmpeg could not record the screen to {} ({status}): {}",
                    video.path.display(),
                    said.trim()
                )));
            }
            if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
                break;
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(VmError::Unavailable(format!(
                    "ffmpeg did not start recording the screen within {} s",
                    START_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(video)
    }

    /// Stops recording and lets ffmpeg finish the file (`q`, then SIGINT,
    /// then SIGKILL if it does not).
    pub fn stop(&mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"q");
        }
        if self.wait(STOP_GRACE) {
            return;
        }
        sys::signal(self.child.id(), libc::SIGINT);
        if !self.wait(Duration::from_secs(2)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn wait(&mut self, within: Duration) -> bool {
        let start = Instant::now();
        loop {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return true;
            }
            if start.elapsed() >= within {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Video {
    fn drop(&mut self) {
        self.stop();
    }
}
