//! A small evaluator for the arithmetic that exporters write into
//! `dim_param`s.
//!
//! torch's dynamo exporter names derived dimensions by their formula
//! (`128*batch`, `batch*128`, `(batch+1)//2`, `floor(s0/2)`), so a symbolic
//! dimension is only known once that formula is evaluated over the values of
//! its symbols. Grammar (Python-like, which is what the exporters print):
//!
//! ```text
//! expr  := term (("+" | "-") term)*
//! term  := unary (("*" | "/" | "//" | "%") unary)*
//! unary := ("-" | "+") unary | power
//! power := atom ("**" unary)?
//! atom  := INTEGER | NAME | NAME "(" expr ("," expr)* ")" | "(" expr ")"
//! ```
//!
//! Functions: `floor`, `ceil`, `abs`, `max`, `min`, `mod`, `floordiv`,
//! `ceildiv`, `floortoint`, `ceiltoint` (any letter case: sympy prints
//! `Max`, `FloorDiv`, `CeilToInt`).
//!
//! Values are exact rationals over `i128`: `/` is true division (as in
//! Python) and `//`, `%` floor like Python's. Every operation is checked, so
//! no input string can overflow or panic; the final value must be an integer.

use std::fmt;

/// A parsed dimension expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// An integer literal.
    Int(i128),
    /// A symbol, e.g. `batch`.
    Sym(String),
    /// Unary minus.
    Neg(Box<Expr>),
    /// A binary operation.
    Bin(BinOp, Box<Expr>, Box<Expr>),
    /// A function call.
    Call(Func, Vec<Expr>),
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/` (true division)
    Div,
    /// `//` (floor division)
    FloorDiv,
    /// `%` (Python modulo: the sign of the divisor)
    Mod,
    /// `**`
    Pow,
}

/// Functions the exporters use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// `floor(x)`, `FloorToInt(x)`
    Floor,
    /// `ceil(x)`, `CeilToInt(x)`
    Ceil,
    /// `abs(x)`
    Abs,
    /// `max(a, b, ...)`
    Max,
    /// `min(a, b, ...)`
    Min,
    /// `Mod(a, b)`
    Mod,
    /// `FloorDiv(a, b)`
    FloorDiv,
    /// `CeilDiv(a, b)`
    CeilDiv,
}

/// Why an expression could not be parsed or evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExprError {
    /// Not in the grammar.
    Syntax(String),
    /// A value left the `i128` range.
    Overflow,
    /// Division or modulo by zero.
    DivisionByZero,
    /// The result is a fraction.
    NotInteger(String),
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExprError::Syntax(s) => write!(f, "not an arithmetic expression ({s})"),
            ExprError::Overflow => write!(f, "the value is too large (it overflows 128-bit arithmetic)"),
            ExprError::DivisionByZero => write!(f, "division by zero"),
            ExprError::NotInteger(v) => write!(f, "the value {v} is not an integer"),
        }
    }
}

impl std::error::Error for ExprError {}

/// An exact rational number `num / den` with `den > 0`, in lowest terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ratio {
    num: i128,
    den: i128,
}

fn gcd(a: i128, b: i128) -> u128 {
    let (mut a, mut b) = (a.unsigned_abs(), b.unsigned_abs());
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

impl Ratio {
    /// An integer.
    pub fn int(v: i128) -> Ratio {
        Ratio { num: v, den: 1 }
    }

    fn new(num: i128, den: i128) -> Result<Ratio, ExprError> {
        if den == 0 {
            return Err(ExprError::DivisionByZero);
        }
        let g = i128::try_from(gcd(num, den).max(1)).map_err(|_| ExprError::Overflow)?;
        let (mut n, mut d) = (num / g, den / g);
        if d < 0 {
            n = n.checked_neg().ok_or(ExprError::Overflow)?;
            d = d.checked_neg().ok_or(ExprError::Overflow)?;
        }
        Ok(Ratio { num: n, den: d })
    }

    /// The value if it is an integer.
    pub fn as_int(self) -> Option<i128> {
        (self.den == 1).then_some(self.num)
    }

    fn add(self, o: Ratio) -> Result<Ratio, ExprError> {
        let n = self
            .num
            .checked_mul(o.den)
            .and_then(|a| o.num.checked_mul(self.den).and_then(|b| a.checked_add(b)))
            .ok_or(ExprError::Overflow)?;
        let d = self.den.checked_mul(o.den).ok_or(ExprError::Overflow)?;
        Ratio::new(n, d)
    }

    fn neg(self) -> Result<Ratio, ExprError> {
        Ok(Ratio { num: self.num.checked_neg().ok_or(ExprError::Overflow)?, den: self.den })
    }

    fn mul(self, o: Ratio) -> Result<Ratio, ExprError> {
        let n = self.num.checked_mul(o.num).ok_or(ExprError::Overflow)?;
        let d = self.den.checked_mul(o.den).ok_or(ExprError::Overflow)?;
        Ratio::new(n, d)
    }

    fn div(self, o: Ratio) -> Result<Ratio, ExprError> {
        if o.num == 0 {
            return Err(ExprError::DivisionByZero);
        }
        self.mul(Ratio::new(o.den, o.num)?)
    }

    fn floor(self) -> Ratio {
        Ratio::int(self.num.div_euclid(self.den))
    }

    fn ceil(self) -> Result<Ratio, ExprError> {
        // ceil(x) = -floor(-x)
        self.neg()?.floor().neg()
    }

    fn cmp_value(self, o: Ratio) -> Result<std::cmp::Ordering, ExprError> {
        let a = self.num.checked_mul(o.den).ok_or(ExprError::Overflow)?;
        let b = o.num.checked_mul(self.den).ok_or(ExprError::Overflow)?;
        Ok(a.cmp(&b))
    }

    fn pow(self, e: Ratio) -> Result<Ratio, ExprError> {
        let e = e.as_int().ok_or_else(|| ExprError::NotInteger(format!("exponent {e}")))?;
        let abs = u32::try_from(e.unsigned_abs()).map_err(|_| ExprError::Overflow)?;
        let n = self.num.checked_pow(abs).ok_or(ExprError::Overflow)?;
        let d = self.den.checked_pow(abs).ok_or(ExprError::Overflow)?;
        if e >= 0 {
            Ratio::new(n, d)
        } else {
            Ratio::new(d, n)
        }
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Int(i128),
    Name(String),
    Op(&'static str),
}

fn tokenize(s: &str) -> Result<Vec<Tok>, ExprError> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i < b.len() && (b[i].is_ascii_alphabetic() || b[i] == b'_') {
                return Err(ExprError::Syntax(format!("`{}` is not a number", &s[start..=i])));
            }
            let v = s[start..i].parse::<i128>().map_err(|_| ExprError::Overflow)?;
            out.push(Tok::Int(v));
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Tok::Name(s[start..i].to_string()));
        } else {
            let two = b.get(i + 1).copied();
            let op: &'static str = match (c, two) {
                (b'/', Some(b'/')) => "//",
                (b'*', Some(b'*')) => "**",
                (b'+', _) => "+",
                (b'-', _) => "-",
                (b'*', _) => "*",
                (b'/', _) => "/",
                (b'%', _) => "%",
                (b'(', _) => "(",
                (b')', _) => ")",
                (b',', _) => ",",
                _ => {
                    let ch = s[i..].chars().next().unwrap_or('?');
                    return Err(ExprError::Syntax(format!("unexpected character `{ch}`")));
                }
            };
            i += op.len();
            out.push(Tok::Op(op));
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

/// Deepest nesting accepted, so that a hostile string cannot overflow the stack.
const MAX_DEPTH: usize = 200;

impl Parser {
    fn peek_op(&self, op: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::Op(o)) if *o == op)
    }

    fn eat_op(&mut self, op: &str) -> bool {
        if self.peek_op(op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn enter(&mut self) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ExprError::Syntax("nested too deeply".into()));
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Expr, ExprError> {
        self.enter()?;
        let mut lhs = self.term()?;
        loop {
            let op = if self.eat_op("+") {
                BinOp::Add
            } else if self.eat_op("-") {
                BinOp::Sub
            } else {
                break;
            };
            let rhs = self.term()?;
            lhs = Expr::Bin(op, Box::new(lhs), Box::new(rhs));
        }
        self.depth -= 1;
        Ok(lhs)
    }

    fn term(&mut self) -> Result<Expr, ExprError> {
        let mut lhs = self.unary()?;
        loop {
            let op = if self.eat_op("*") {
                BinOp::Mul
            } else if self.eat_op("//") {
                BinOp::FloorDiv
            } else if self.eat_op("/") {
                BinOp::Div
            } else if self.eat_op("%") {
                BinOp::Mod
            } else {
                break;
            };
            let rhs = self.unary()?;
            lhs = Expr::Bin(op, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        self.enter()?;
        let e = if self.eat_op("-") {
            Expr::Neg(Box::new(self.unary()?))
        } else if self.eat_op("+") {
            self.unary()?
        } else {
            let base = self.atom()?;
            if self.eat_op("**") {
                Expr::Bin(BinOp::Pow, Box::new(base), Box::new(self.unary()?))
            } else {
                base
            }
        };
        self.depth -= 1;
        Ok(e)
    }

    fn atom(&mut self) -> Result<Expr, ExprError> {
        match self.toks.get(self.pos).cloned() {
            Some(Tok::Int(v)) => {
                self.pos += 1;
                Ok(Expr::Int(v))
            }
            Some(Tok::Name(name)) => {
                self.pos += 1;
                if !self.eat_op("(") {
                    return Ok(Expr::Sym(name));
                }
                let func = match name.to_ascii_lowercase().as_str() {
                    "floor" | "floortoint" => Func::Floor,
                    "ceil" | "ceiling" | "ceiltoint" => Func::Ceil,
                    "abs" => Func::Abs,
                    "max" => Func::Max,
                    "min" => Func::Min,
                    "mod" => Func::Mod,
                    "floordiv" => Func::FloorDiv,
                    "ceildiv" => Func::CeilDiv,
                    _ => return Err(ExprError::Syntax(format!("unknown function `{name}`"))),
                };
                let mut args = vec![self.expr()?];
                while self.eat_op(",") {
                    args.push(self.expr()?);
                }
                if !self.eat_op(")") {
                    return Err(ExprError::Syntax(format!("`)` expected after the arguments of `{name}`")));
                }
                let arity_ok = match func {
                    Func::Floor | Func::Ceil | Func::Abs => args.len() == 1,
                    Func::Mod | Func::FloorDiv | Func::CeilDiv => args.len() == 2,
                    Func::Max | Func::Min => !args.is_empty(),
                };
                if !arity_ok {
                    return Err(ExprError::Syntax(format!("wrong number of arguments to `{name}`")));
                }
                Ok(Expr::Call(func, args))
            }
            Some(Tok::Op("(")) => {
                self.pos += 1;
                let e = self.expr()?;
                if !self.eat_op(")") {
                    return Err(ExprError::Syntax("unbalanced parentheses".into()));
                }
                Ok(e)
            }
            Some(Tok::Op(op)) => Err(ExprError::Syntax(format!("unexpected `{op}`"))),
            None => Err(ExprError::Syntax("unexpected end".into())),
        }
    }
}

/// Parses a dimension expression.
pub fn parse(s: &str) -> Result<Expr, ExprError> {
    let toks = tokenize(s)?;
    if toks.is_empty() {
        return Err(ExprError::Syntax("empty".into()));
    }
    let mut p = Parser { toks, pos: 0, depth: 0 };
    let e = p.expr()?;
    if p.pos != p.toks.len() {
        return Err(ExprError::Syntax(format!("unexpected trailing input in `{s}`")));
    }
    Ok(e)
}

impl Expr {
    /// Appends the names of the symbols the expression uses (with repeats).
    pub fn symbols<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::Int(_) => {}
            Expr::Sym(s) => out.push(s),
            Expr::Neg(e) => e.symbols(out),
            Expr::Bin(_, a, b) => {
                a.symbols(out);
                b.symbols(out);
            }
            Expr::Call(_, args) => args.iter().for_each(|a| a.symbols(out)),
        }
    }

    /// Whether the expression is a lone symbol.
    pub fn is_symbol(&self) -> bool {
        matches!(self, Expr::Sym(_))
    }

    /// The exact value, with each symbol's value given by `env`.
    pub fn eval(&self, env: &mut dyn FnMut(&str) -> i64) -> Result<Ratio, ExprError> {
        Ok(match self {
            Expr::Int(v) => Ratio::int(*v),
            Expr::Sym(s) => Ratio::int(i128::from(env(s))),
            Expr::Neg(e) => e.eval(env)?.neg()?,
            Expr::Bin(op, a, b) => {
                let (a, b) = (a.eval(env)?, b.eval(env)?);
                match op {
                    BinOp::Add => a.add(b)?,
                    BinOp::Sub => a.add(b.neg()?)?,
                    BinOp::Mul => a.mul(b)?,
                    BinOp::Div => a.div(b)?,
                    BinOp::FloorDiv => a.div(b)?.floor(),
                    BinOp::Mod => a.add(a.div(b)?.floor().mul(b)?.neg()?)?,
                    BinOp::Pow => a.pow(b)?,
                }
            }
            Expr::Call(f, args) => {
                let vals = args.iter().map(|a| a.eval(env)).collect::<Result<Vec<_>, _>>()?;
                let arg = |i: usize| {
                    vals.get(i).copied().ok_or_else(|| ExprError::Syntax(format!("missing argument to {f:?}")))
                };
                match f {
                    Func::Floor => arg(0)?.floor(),
                    Func::Ceil => arg(0)?.ceil()?,
                    Func::Abs => {
                        let v = arg(0)?;
                        if v.num < 0 {
                            v.neg()?
                        } else {
                            v
                        }
                    }
                    Func::Max | Func::Min => {
                        let mut best = arg(0)?;
                        for &v in vals.iter().skip(1) {
                            let ord = v.cmp_value(best)?;
                            let better = if *f == Func::Max { ord.is_gt() } else { ord.is_lt() };
                            if better {
                                best = v;
                            }
                        }
                        best
                    }
                    Func::Mod => {
                        let (a, b) = (arg(0)?, arg(1)?);
                        a.add(a.div(b)?.floor().mul(b)?.neg()?)?
                    }
                    Func::FloorDiv => arg(0)?.div(arg(1)?)?.floor(),
                    Func::CeilDiv => arg(0)?.div(arg(1)?)?.ceil()?,
                }
            }
        })
    }

    /// The value, which must be an integer.
    pub fn eval_int(&self, env: &mut dyn FnMut(&str) -> i64) -> Result<i128, ExprError> {
        let v = self.eval(env)?;
        v.as_int().ok_or_else(|| ExprError::NotInteger(v.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(s: &str, vars: &[(&str, i64)]) -> Result<i128, ExprError> {
        parse(s)?.eval_int(&mut |name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| *v).unwrap_or(1))
    }

    #[test]
    fn literals_and_precedence() {
        assert_eq!(ev("7", &[]), Ok(7));
        assert_eq!(ev("1 + 2 * 3", &[]), Ok(7));
        assert_eq!(ev("(1 + 2) * 3", &[]), Ok(9));
        assert_eq!(ev("10 - 4 - 3", &[]), Ok(3));
        assert_eq!(ev("2 ** 3 ** 2", &[]), Ok(512));
        assert_eq!(ev("-2 ** 2", &[]), Ok(-4));
        assert_eq!(ev("-(3) + 5", &[]), Ok(2));
        assert_eq!(ev("+4", &[]), Ok(4));
    }

    #[test]
    fn exporter_forms() {
        let b = [("batch", 4)];
        assert_eq!(ev("128*batch", &b), Ok(512));
        assert_eq!(ev("batch*128", &b), Ok(512));
        assert_eq!(ev("(batch+1)//2", &[("batch", 5)]), Ok(3));
        assert_eq!(ev("batch // 2", &[("batch", 5)]), Ok(2));
        assert_eq!(ev("floor(s0/2)", &[("s0", 7)]), Ok(3));
        assert_eq!(ev("ceil(s0/2)", &[("s0", 7)]), Ok(4));
        assert_eq!(ev("CeilToInt(s0/2)", &[("s0", 7)]), Ok(4));
        assert_eq!(ev("Max(1, s0 - 3)", &[("s0", 2)]), Ok(1));
        assert_eq!(ev("Min(8, s0)", &[("s0", 12)]), Ok(8));
        assert_eq!(ev("FloorDiv(s0, 3)", &[("s0", 10)]), Ok(3));
        assert_eq!(ev("Mod(s0, 3)", &[("s0", 10)]), Ok(1));
        assert_eq!(ev("s0 % 4", &[("s0", 10)]), Ok(2));
        assert_eq!(ev("batch*seq_len", &[("batch", 2), ("seq_len", 7)]), Ok(14));
        // true division whose result is whole
        assert_eq!(ev("batch/2", &[("batch", 6)]), Ok(3));
    }

    #[test]
    fn python_floor_semantics() {
        assert_eq!(ev("-7 // 2", &[]), Ok(-4));
        assert_eq!(ev("-7 % 3", &[]), Ok(2));
        assert_eq!(ev("7 % -3", &[]), Ok(-2));
    }

    #[test]
    fn errors() {
        assert_eq!(ev("batch/2", &[("batch", 3)]), Err(ExprError::NotInteger("3/2".into())));
        assert_eq!(ev("1/0", &[]), Err(ExprError::DivisionByZero));
        assert_eq!(ev("1//0", &[]), Err(ExprError::DivisionByZero));
        assert_eq!(ev("5 % 0", &[]), Err(ExprError::DivisionByZero));
        assert_eq!(ev("99999999999999999999 ** 9", &[]), Err(ExprError::Overflow));
        assert_eq!(ev("999999999999999999999999999999999999999999", &[]), Err(ExprError::Overflow));
        for bad in ["", "(", "1 +", "a b", "f(1)", "max()", "floor(1, 2)", "1 ) ", "3x", "a$b", "((((1)"] {
            assert!(matches!(parse(bad), Err(ExprError::Syntax(_))), "{bad:?} should not parse");
        }
        // i128::MIN appears without a panic anywhere
        let min = "(-85070591730234615865843651857942052864 * 2)";
        assert!(ev(&format!("{min} / {min}"), &[]).is_err());
        assert!(ev(&format!("{min} // 3"), &[]).is_ok());
        assert!(ev(&format!("abs({min})"), &[]).is_err());
        assert!(ev(&format!("-{min}"), &[]).is_err());
        let deep = "(".repeat(10_000) + "1" + &")".repeat(10_000);
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn symbols_are_listed() {
        let e = parse("(batch + 1) * seq // batch").unwrap();
        let mut syms = Vec::new();
        e.symbols(&mut syms);
        assert_eq!(syms, vec!["batch", "seq", "batch"]);
        assert!(parse("batch").unwrap().is_symbol());
        assert!(!parse("2*batch").unwrap().is_symbol());
    }
}
