//! Wire types shared by `fipd` and `fip-agent`.
