//! A pseudo-terminal to drive the prompts through, as a person at a terminal would: the
//! program's stdin, stdout and stderr are the terminal, and its echo setting decides what
//! shows of what is typed.

use std::io::{Read as _, Write as _};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};

/// What the terminal has shown so far, and whether the program has let go of it.
#[derive(Default)]
struct Screen {
    shown: Vec<u8>,
    closed: bool,
}

pub(crate) struct Pty {
    master: std::fs::File,
    child: Child,
    screen: Arc<(Mutex<Screen>, Condvar)>,
    /// How much of the screen `expect` has passed.
    seen: usize,
}

impl Pty {
    /// Starts `command` on a new terminal.
    pub(crate) fn spawn(mut command: Command) -> Pty {
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let name = ptsname(&master, Vec::new()).unwrap();
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(name.to_str().unwrap())
            .unwrap();
        command
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        let child = command.spawn().unwrap();
        // The parent's copies of the terminal end closed: the reader sees the end when the
        // program exits.
        drop(command);
        let master = std::fs::File::from(master);
        let screen = Arc::new((Mutex::new(Screen::default()), Condvar::new()));
        let (mut reader, shared) = (master.try_clone().unwrap(), screen.clone());
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            loop {
                // EIO once every copy of the terminal end is closed.
                let n = reader.read(&mut buffer).unwrap_or(0);
                let (lock, changed) = &*shared;
                let mut screen = lock.lock().unwrap();
                if n == 0 {
                    screen.closed = true;
                    changed.notify_all();
                    return;
                }
                screen.shown.extend_from_slice(&buffer[..n]);
                changed.notify_all();
            }
        });
        Pty {
            master,
            child,
            screen,
            seen: 0,
        }
    }

    /// Waits until the terminal shows `text` after what was already expected; what it showed
    /// up to there. A program that ends first fails the test with its screen.
    pub(crate) fn expect(&mut self, text: &str) -> String {
        // A guard against a hung program, not a measure of speed.
        let deadline = Instant::now() + Duration::from_secs(120);
        let (lock, changed) = &*self.screen;
        let mut screen = lock.lock().unwrap();
        loop {
            let shown = String::from_utf8_lossy(&screen.shown[self.seen..]).into_owned();
            if let Some(at) = shown.find(text) {
                self.seen += at + text.len();
                return shown[..at + text.len()].to_owned();
            }
            assert!(
                !screen.closed && Instant::now() < deadline,
                "the terminal never showed {text:?}; it showed:\n{}",
                String::from_utf8_lossy(&screen.shown)
            );
            screen = changed
                .wait_timeout(screen, Duration::from_millis(200))
                .unwrap()
                .0;
        }
    }

    /// Types `line` and Enter.
    pub(crate) fn send(&mut self, line: &str) {
        self.master
            .write_all(format!("{line}\r").as_bytes())
            .unwrap();
        self.master.flush().unwrap();
    }

    /// Waits for the program to end; its status and everything the terminal showed.
    pub(crate) fn finish(mut self) -> (ExitStatus, String) {
        let status = self.child.wait().unwrap();
        let (lock, changed) = &*self.screen;
        let mut screen = lock.lock().unwrap();
        while !screen.closed {
            screen = changed
                .wait_timeout(screen, Duration::from_millis(200))
                .unwrap()
                .0;
        }
        (status, String::from_utf8_lossy(&screen.shown).into_owned())
    }
}
