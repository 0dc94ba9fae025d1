//! Signals by their RFC 4254 names, as russh carries them in `signal` and `exit-signal`.

use russh::Sig;
use sshpod_core::Signal;

/// The SSH name of `signal`.
pub fn to_sig(signal: Signal) -> Sig {
    match signal {
        Signal::Abrt => Sig::ABRT,
        Signal::Alrm => Sig::ALRM,
        Signal::Fpe => Sig::FPE,
        Signal::Hup => Sig::HUP,
        Signal::Ill => Sig::ILL,
        Signal::Int => Sig::INT,
        Signal::Kill => Sig::KILL,
        Signal::Pipe => Sig::PIPE,
        Signal::Quit => Sig::QUIT,
        Signal::Segv => Sig::SEGV,
        Signal::Term => Sig::TERM,
        Signal::Usr1 => Sig::USR1,
        // RFC 4254 lists no USR2; OpenSSH sends its name as is.
        Signal::Usr2 => Sig::Custom("USR2".to_owned()),
    }
}

/// The signal an SSH name stands for, if sshpod knows it.
pub fn from_sig(sig: &Sig) -> Option<Signal> {
    Some(match sig {
        Sig::ABRT => Signal::Abrt,
        Sig::ALRM => Signal::Alrm,
        Sig::FPE => Signal::Fpe,
        Sig::HUP => Signal::Hup,
        Sig::ILL => Signal::Ill,
        Sig::INT => Signal::Int,
        Sig::KILL => Signal::Kill,
        Sig::PIPE => Signal::Pipe,
        Sig::QUIT => Signal::Quit,
        Sig::SEGV => Signal::Segv,
        Sig::TERM => Signal::Term,
        Sig::USR1 => Signal::Usr1,
        Sig::Custom(name) => return Signal::from_name(name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_signal_survives_the_round_trip() {
        for s in Signal::ALL {
            assert_eq!(from_sig(&to_sig(s)), Some(s));
        }
        assert_eq!(from_sig(&Sig::Custom("WINCH".into())), None);
    }
}
