//! ethik 0.0.4's solver, reproduced: scipy's BFGS in one dimension on ethik's objective.
//!
//! ethik's `compute_ksi` calls `scipy.optimize.minimize(F, x0=[0.0], jac=True, method="BFGS")`
//! with `F(xi) = ((m(xi) - t)^2, m(xi) - t)`: a loss and a "gradient" that is not the loss's
//! derivative (it is the derivative of the convex dual). `F` raises as soon as the loss drops
//! under `tol`, and ethik keeps the `xi` of that evaluation; if BFGS returns normally instead,
//! ethik discards its result and keeps `xi = 0`.
//!
//! What is ported, operation for operation (scipy 1.11 to 1.17 agree on it):
//! `_minimize_bfgs` with its defaults (`gtol = 1e-5`, `maxiter = 200`, `xrtol = 0`, initial
//! inverse Hessian 1, `old_old_fval = f0 + |g0| / 2`, `rho = 1000` when `y s = 0`);
//! `_line_search_wolfe12`: `line_search_wolfe1` (`scalar_search_wolfe1`, initial step
//! `min(1, 1.01 * 2 (f0 - f_prev) / phi'(0))`, MINPACK-2's `dcsrch` and `dcstep` with
//! `c1 = 1e-4`, `c2 = 0.9`, `xtol = 1e-14`, `stpmin = 1e-100`, `stpmax = 1e100`, 100 iterations),
//! and when it fails `line_search_wolfe2` (doubling, `_zoom` with `_cubicmin` / `_quadmin`).
//! `m` is summed over the distinct values of the feature instead of over rows, which changes
//! the last bits only. On the MNIST example this reproduces ethik's influences to ~1e-13.

use crate::stats::Distinct;

/// What ethik's solver ends with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Outcome {
    /// The tilt (0 when ethik gives up).
    pub xi: f64,
    /// Whether the loss fell under `tol`.
    pub converged: bool,
    /// Evaluations of the objective.
    pub evaluations: u32,
}

/// ethik's exception: the loss fell under `tol` at this `xi`.
#[derive(Debug, Clone, Copy)]
struct Stopped(f64);

type Eval<T> = Result<T, Stopped>;

struct Objective<'a> {
    d: &'a Distinct,
    t: f64,
    tol: f64,
    evaluations: u32,
}

impl Objective<'_> {
    /// `F(x) = (loss, grad)`, or the stop.
    fn eval(&mut self, x: f64) -> Eval<(f64, f64)> {
        self.evaluations += 1;
        let r = self.d.residual(x, self.t);
        let loss = r * r;
        if loss < self.tol { Err(Stopped(x)) } else { Ok((loss, r)) }
    }
}

/// ethik's `compute_ksi` for a standardised target `t` (after its early exit).
pub(crate) fn bfgs(d: &Distinct, t: f64, tol: f64) -> Outcome {
    let mut obj = Objective { d, t, tol, evaluations: 0 };
    match minimize(&mut obj) {
        Err(Stopped(xi)) => Outcome { xi, converged: true, evaluations: obj.evaluations },
        Ok(()) => Outcome { xi: 0.0, converged: false, evaluations: obj.evaluations },
    }
}

const GTOL: f64 = 1e-5;
const MAXITER: usize = 200;
const C1: f64 = 1e-4;
const C2: f64 = 0.9;

/// Python's `min(a, b)`: `b` if `b < a`, else `a` (so a NaN second argument loses).
fn py_min(a: f64, b: f64) -> f64 {
    if b < a { b } else { a }
}

/// Python's `max(a, b)`: `b` if `b > a`, else `a`.
fn py_max(a: f64, b: f64) -> f64 {
    if b > a { b } else { a }
}

/// `np.sign`.
fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else if x == 0.0 {
        0.0
    } else {
        f64::NAN
    }
}

/// `np.clip(x, lo, hi)` for scalars (NaN stays NaN).
fn clip(x: f64, lo: f64, hi: f64) -> f64 {
    if x.is_nan() {
        x
    } else if x < lo {
        lo
    } else if x > hi {
        hi
    } else {
        x
    }
}

/// `_minimize_bfgs` in one dimension from `x0 = 0`; returns normally when scipy would.
fn minimize(obj: &mut Objective<'_>) -> Eval<()> {
    let (f0, g0) = obj.eval(0.0)?;
    let mut old_fval = f0;
    let mut gfk = g0;
    let mut hk = 1.0;
    let mut old_old_fval = old_fval + gfk.abs() / 2.0;
    let mut xk = 0.0;
    let mut gnorm = gfk.abs();
    let mut k = 0;
    while gnorm > GTOL && k < MAXITER {
        let pk = -(hk * gfk);
        let Some(step) = line_search_wolfe12(obj, xk, pk, gfk, old_fval, old_old_fval)? else {
            return Ok(()); // _LineSearchError: warnflag 2, normal return.
        };
        old_fval = step.fval;
        old_old_fval = step.old_fval;
        let alpha_k = step.alpha;
        let sk = alpha_k * pk;
        let xkp1 = xk + sk;
        xk = xkp1;
        let gfkp1 = match step.gval {
            Some(g) => g,
            None => obj.eval(xkp1)?.1,
        };
        let yk = gfkp1 - gfk;
        gfk = gfkp1;
        k += 1;
        gnorm = gfk.abs();
        if gnorm <= GTOL {
            break;
        }
        if alpha_k * pk.abs() <= 0.0 {
            break; // xrtol = 0
        }
        if !old_fval.is_finite() {
            break;
        }
        let rhok_inv = yk * sk;
        let rhok = if rhok_inv == 0.0 { 1000.0 } else { 1.0 / rhok_inv };
        let a1 = 1.0 - sk * yk * rhok;
        let a2 = 1.0 - yk * sk * rhok;
        hk = a1 * (hk * a2) + rhok * sk * sk;
    }
    Ok(())
}

/// A successful line search: step, loss there, loss at the start, gradient there (if known).
struct Step {
    alpha: f64,
    fval: f64,
    old_fval: f64,
    gval: Option<f64>,
}

fn line_search_wolfe12(
    obj: &mut Objective<'_>,
    xk: f64,
    pk: f64,
    gfk: f64,
    old_fval: f64,
    old_old_fval: f64,
) -> Eval<Option<Step>> {
    if let Some(step) = line_search_wolfe1(obj, xk, pk, gfk, old_fval, old_old_fval)? {
        return Ok(Some(step));
    }
    line_search_wolfe2(obj, xk, pk, gfk, old_fval, old_old_fval)
}

/// The initial step of both line searches.
fn initial_step(phi0: f64, old_phi0: f64, derphi0: f64) -> f64 {
    let alpha1 =
        if derphi0 != 0.0 { py_min(1.0, 1.01 * 2.0 * (phi0 - old_phi0) / derphi0) } else { 1.0 };
    if alpha1 < 0.0 { 1.0 } else { alpha1 }
}

fn line_search_wolfe1(
    obj: &mut Objective<'_>,
    xk: f64,
    pk: f64,
    gfk: f64,
    phi0: f64,
    old_phi0: f64,
) -> Eval<Option<Step>> {
    let derphi0 = gfk * pk;
    let mut alpha1 = initial_step(phi0, old_phi0, derphi0);
    let mut search = Dcsrch::new(C1, C2, 1e-14, 1e-100, 1e100);
    let (mut phi1, mut derphi1) = (phi0, derphi0);
    let mut gval = gfk;
    let mut task = Task::Start;
    let mut stp = alpha1;
    let mut finished = false;
    for _ in 0..100 {
        (stp, task) = search.iterate(alpha1, phi1, derphi1, task);
        if !stp.is_finite() {
            return Ok(None);
        }
        if task == Task::Fg {
            alpha1 = stp;
            let (f, g) = obj.eval(xk + stp * pk)?;
            phi1 = f;
            gval = g;
            derphi1 = g * pk;
        } else {
            finished = true;
            break;
        }
    }
    if !finished || matches!(task, Task::Error | Task::Warning) {
        return Ok(None);
    }
    Ok(Some(Step { alpha: stp, fval: phi1, old_fval: phi0, gval: Some(gval) }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    Start,
    Fg,
    Convergence,
    Warning,
    Error,
}

/// MINPACK-2's `dcsrch` (scipy's `DCSRCH._iterate`).
struct Dcsrch {
    brackt: bool,
    stage: u8,
    ginit: f64,
    gtest: f64,
    gx: f64,
    gy: f64,
    finit: f64,
    fx: f64,
    fy: f64,
    stx: f64,
    sty: f64,
    stmin: f64,
    stmax: f64,
    width: f64,
    width1: f64,
    ftol: f64,
    gtol: f64,
    xtol: f64,
    stpmin: f64,
    stpmax: f64,
}

impl Dcsrch {
    fn new(ftol: f64, gtol: f64, xtol: f64, stpmin: f64, stpmax: f64) -> Self {
        Self {
            brackt: false,
            stage: 0,
            ginit: 0.0,
            gtest: 0.0,
            gx: 0.0,
            gy: 0.0,
            finit: 0.0,
            fx: 0.0,
            fy: 0.0,
            stx: 0.0,
            sty: 0.0,
            stmin: 0.0,
            stmax: 0.0,
            width: 0.0,
            width1: 0.0,
            ftol,
            gtol,
            xtol,
            stpmin,
            stpmax,
        }
    }

    fn iterate(&mut self, mut stp: f64, f: f64, g: f64, task: Task) -> (f64, Task) {
        const P5: f64 = 0.5;
        const P66: f64 = 0.66;
        const XTRAPL: f64 = 1.1;
        const XTRAPU: f64 = 4.0;
        if task == Task::Start {
            if stp < self.stpmin
                || stp > self.stpmax
                || g >= 0.0
                || self.ftol < 0.0
                || self.gtol < 0.0
                || self.xtol < 0.0
                || self.stpmin < 0.0
                || self.stpmax < self.stpmin
            {
                return (stp, Task::Error);
            }
            self.brackt = false;
            self.stage = 1;
            self.finit = f;
            self.ginit = g;
            self.gtest = self.ftol * self.ginit;
            self.width = self.stpmax - self.stpmin;
            self.width1 = self.width / P5;
            self.stx = 0.0;
            self.fx = self.finit;
            self.gx = self.ginit;
            self.sty = 0.0;
            self.fy = self.finit;
            self.gy = self.ginit;
            self.stmin = 0.0;
            self.stmax = stp + XTRAPU * stp;
            return (stp, Task::Fg);
        }
        let ftest = self.finit + stp * self.gtest;
        if self.stage == 1 && f <= ftest && g >= 0.0 {
            self.stage = 2;
        }
        let mut out = None;
        if self.brackt && (stp <= self.stmin || stp >= self.stmax) {
            out = Some(Task::Warning);
        }
        if self.brackt && self.stmax - self.stmin <= self.xtol * self.stmax {
            out = Some(Task::Warning);
        }
        if stp == self.stpmax && f <= ftest && g <= self.gtest {
            out = Some(Task::Warning);
        }
        if stp == self.stpmin && (f > ftest || g >= self.gtest) {
            out = Some(Task::Warning);
        }
        if f <= ftest && g.abs() <= self.gtol * -self.ginit {
            out = Some(Task::Convergence);
        }
        if let Some(task) = out {
            return (stp, task);
        }
        if self.stage == 1 && f <= self.fx && f > ftest {
            let fm = f - stp * self.gtest;
            let fxm = self.fx - self.stx * self.gtest;
            let fym = self.fy - self.sty * self.gtest;
            let gm = g - self.gtest;
            let gxm = self.gx - self.gtest;
            let gym = self.gy - self.gtest;
            let s = dcstep(
                [self.stx, fxm, gxm],
                [self.sty, fym, gym],
                [stp, fm, gm],
                self.brackt,
                self.stmin,
                self.stmax,
            );
            self.stx = s.stx;
            self.sty = s.sty;
            stp = s.stp;
            self.brackt = s.brackt;
            self.fx = s.fx + self.stx * self.gtest;
            self.fy = s.fy + self.sty * self.gtest;
            self.gx = s.dx + self.gtest;
            self.gy = s.dy + self.gtest;
        } else {
            let s = dcstep(
                [self.stx, self.fx, self.gx],
                [self.sty, self.fy, self.gy],
                [stp, f, g],
                self.brackt,
                self.stmin,
                self.stmax,
            );
            self.stx = s.stx;
            self.fx = s.fx;
            self.gx = s.dx;
            self.sty = s.sty;
            self.fy = s.fy;
            self.gy = s.dy;
            stp = s.stp;
            self.brackt = s.brackt;
        }
        if self.brackt {
            if (self.sty - self.stx).abs() >= P66 * self.width1 {
                stp = self.stx + P5 * (self.sty - self.stx);
            }
            self.width1 = self.width;
            self.width = (self.sty - self.stx).abs();
        }
        if self.brackt {
            self.stmin = py_min(self.stx, self.sty);
            self.stmax = py_max(self.stx, self.sty);
        } else {
            self.stmin = stp + XTRAPL * (stp - self.stx);
            self.stmax = stp + XTRAPU * (stp - self.stx);
        }
        stp = clip(stp, self.stpmin, self.stpmax);
        if self.brackt
            && (stp <= self.stmin
                || stp >= self.stmax
                || self.stmax - self.stmin <= self.xtol * self.stmax)
        {
            stp = self.stx;
        }
        (stp, Task::Fg)
    }
}

struct Dcstep {
    stx: f64,
    fx: f64,
    dx: f64,
    sty: f64,
    fy: f64,
    dy: f64,
    stp: f64,
    brackt: bool,
}

/// MINPACK-2's `dcstep`: the safeguarded cubic / quadratic step of `dcsrch`.
fn dcstep(
    [stx, fx, dx]: [f64; 3],
    [sty, fy, dy]: [f64; 3],
    [stp, fp, dp]: [f64; 3],
    brackt: bool,
    stpmin: f64,
    stpmax: f64,
) -> Dcstep {
    let sgnd = sign(dp) * sign(dx);
    let mut brackt = brackt;
    let stpf;
    if fp > fx {
        let theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp;
        let s = py_max(py_max(theta.abs(), dx.abs()), dp.abs());
        let mut gamma = s * ((theta / s).powi(2) - (dx / s) * (dp / s)).sqrt();
        if stp < stx {
            gamma = -gamma;
        }
        let p = (gamma - dx) + theta;
        let q = ((gamma - dx) + gamma) + dp;
        let r = p / q;
        let stpc = stx + r * (stp - stx);
        let stpq = stx + ((dx / ((fx - fp) / (stp - stx) + dx)) / 2.0) * (stp - stx);
        stpf = if (stpc - stx).abs() <= (stpq - stx).abs() {
            stpc
        } else {
            stpc + (stpq - stpc) / 2.0
        };
        brackt = true;
    } else if sgnd < 0.0 {
        let theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp;
        let s = py_max(py_max(theta.abs(), dx.abs()), dp.abs());
        let mut gamma = s * ((theta / s).powi(2) - (dx / s) * (dp / s)).sqrt();
        if stp > stx {
            gamma = -gamma;
        }
        let p = (gamma - dp) + theta;
        let q = ((gamma - dp) + gamma) + dx;
        let r = p / q;
        let stpc = stp + r * (stx - stp);
        let stpq = stp + (dp / (dp - dx)) * (stx - stp);
        stpf = if (stpc - stp).abs() > (stpq - stp).abs() { stpc } else { stpq };
        brackt = true;
    } else if dp.abs() < dx.abs() {
        let theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp;
        let s = py_max(py_max(theta.abs(), dx.abs()), dp.abs());
        let mut gamma = s * py_max(0.0, (theta / s).powi(2) - (dx / s) * (dp / s)).sqrt();
        if stp > stx {
            gamma = -gamma;
        }
        let p = (gamma - dp) + theta;
        let q = (gamma + (dx - dp)) + gamma;
        let r = p / q;
        let stpc = if r < 0.0 && gamma != 0.0 {
            stp + r * (stx - stp)
        } else if stp > stx {
            stpmax
        } else {
            stpmin
        };
        let stpq = stp + (dp / (dp - dx)) * (stx - stp);
        if brackt {
            let f = if (stpc - stp).abs() < (stpq - stp).abs() { stpc } else { stpq };
            stpf = if stp > stx {
                py_min(stp + 0.66 * (sty - stp), f)
            } else {
                py_max(stp + 0.66 * (sty - stp), f)
            };
        } else {
            let f = if (stpc - stp).abs() > (stpq - stp).abs() { stpc } else { stpq };
            stpf = clip(f, stpmin, stpmax);
        }
    } else if brackt {
        let theta = 3.0 * (fp - fy) / (sty - stp) + dy + dp;
        let s = py_max(py_max(theta.abs(), dy.abs()), dp.abs());
        let mut gamma = s * ((theta / s).powi(2) - (dy / s) * (dp / s)).sqrt();
        if stp > sty {
            gamma = -gamma;
        }
        let p = (gamma - dp) + theta;
        let q = ((gamma - dp) + gamma) + dy;
        let r = p / q;
        stpf = stp + r * (sty - stp);
    } else if stp > stx {
        stpf = stpmax;
    } else {
        stpf = stpmin;
    }
    let mut out = Dcstep { stx, fx, dx, sty, fy, dy, stp: stpf, brackt };
    if fp > fx {
        out.sty = stp;
        out.fy = fp;
        out.dy = dp;
    } else {
        if sgnd < 0.0 {
            out.sty = stx;
            out.fy = fx;
            out.dy = dx;
        }
        out.stx = stp;
        out.fx = fp;
        out.dx = dp;
    }
    out
}

fn line_search_wolfe2(
    obj: &mut Objective<'_>,
    xk: f64,
    pk: f64,
    gfk: f64,
    phi0: f64,
    old_phi0: f64,
) -> Eval<Option<Step>> {
    const AMAX: f64 = 1e100;
    let derphi0 = gfk * pk;
    let mut gval = None;
    // phi and derphi evaluate F at xk + alpha * pk; derphi records the gradient.
    let mut phi = |obj: &mut Objective<'_>, alpha: f64| obj.eval(xk + alpha * pk).map(|r| r.0);
    let mut derphi = |obj: &mut Objective<'_>, alpha: f64, gval: &mut Option<f64>| {
        obj.eval(xk + alpha * pk).map(|(_, g)| {
            *gval = Some(g);
            g * pk
        })
    };
    let mut alpha0 = 0.0;
    let mut alpha1 = py_min(initial_step(phi0, old_phi0, derphi0), AMAX);
    let mut phi_a1 = phi(obj, alpha1)?;
    let mut phi_a0 = phi0;
    let mut derphi_a0 = derphi0;
    for i in 0..10 {
        if alpha1 == 0.0 || alpha0 > AMAX {
            return Ok(None);
        }
        if phi_a1 > phi0 + C1 * alpha1 * derphi0 || (phi_a1 >= phi_a0 && i > 0) {
            let z = zoom(
                obj,
                &mut phi,
                &mut derphi,
                &mut gval,
                [alpha0, alpha1, phi_a0, phi_a1, derphi_a0],
                phi0,
                derphi0,
            )?;
            return Ok(z.map(|(alpha, fval)| Step { alpha, fval, old_fval: phi0, gval }));
        }
        let derphi_a1 = derphi(obj, alpha1, &mut gval)?;
        if derphi_a1.abs() <= -C2 * derphi0 {
            return Ok(Some(Step { alpha: alpha1, fval: phi_a1, old_fval: phi0, gval }));
        }
        if derphi_a1 >= 0.0 {
            let z = zoom(
                obj,
                &mut phi,
                &mut derphi,
                &mut gval,
                [alpha1, alpha0, phi_a1, phi_a0, derphi_a1],
                phi0,
                derphi0,
            )?;
            return Ok(z.map(|(alpha, fval)| Step { alpha, fval, old_fval: phi0, gval }));
        }
        let alpha2 = py_min(2.0 * alpha1, AMAX);
        alpha0 = alpha1;
        alpha1 = alpha2;
        phi_a0 = phi_a1;
        phi_a1 = phi(obj, alpha1)?;
        derphi_a0 = derphi_a1;
    }
    // Out of iterations: scipy accepts alpha1 without a gradient (BFGS evaluates it).
    Ok(Some(Step { alpha: alpha1, fval: phi_a1, old_fval: phi0, gval: None }))
}

/// scipy's `_zoom`; `Some((alpha, phi(alpha)))` or `None` after 10 iterations.
#[allow(clippy::type_complexity)]
fn zoom(
    obj: &mut Objective<'_>,
    phi: &mut impl FnMut(&mut Objective<'_>, f64) -> Eval<f64>,
    derphi: &mut impl FnMut(&mut Objective<'_>, f64, &mut Option<f64>) -> Eval<f64>,
    gval: &mut Option<f64>,
    [mut a_lo, mut a_hi, mut phi_lo, mut phi_hi, mut derphi_lo]: [f64; 5],
    phi0: f64,
    derphi0: f64,
) -> Eval<Option<(f64, f64)>> {
    const DELTA1: f64 = 0.2;
    const DELTA2: f64 = 0.1;
    let mut phi_rec = phi0;
    let mut a_rec = 0.0;
    let mut i = 0;
    loop {
        let dalpha = a_hi - a_lo;
        let (a, b) = if dalpha < 0.0 { (a_hi, a_lo) } else { (a_lo, a_hi) };
        let mut a_j = None;
        let mut cchk = 0.0;
        if i > 0 {
            cchk = DELTA1 * dalpha;
            a_j = cubicmin(a_lo, phi_lo, derphi_lo, a_hi, phi_hi, a_rec, phi_rec);
        }
        let reject = |x: Option<f64>, chk: f64| match x {
            None => true,
            Some(x) => x > b - chk || x < a + chk,
        };
        if i == 0 || reject(a_j, cchk) {
            let qchk = DELTA2 * dalpha;
            a_j = quadmin(a_lo, phi_lo, derphi_lo, a_hi, phi_hi);
            if reject(a_j, qchk) {
                a_j = Some(a_lo + 0.5 * dalpha);
            }
        }
        let a_j = a_j.unwrap_or(a_lo + 0.5 * dalpha);
        let phi_aj = phi(obj, a_j)?;
        if phi_aj > phi0 + C1 * a_j * derphi0 || phi_aj >= phi_lo {
            phi_rec = phi_hi;
            a_rec = a_hi;
            a_hi = a_j;
            phi_hi = phi_aj;
        } else {
            let derphi_aj = derphi(obj, a_j, gval)?;
            if derphi_aj.abs() <= -C2 * derphi0 {
                return Ok(Some((a_j, phi_aj)));
            }
            if derphi_aj * (a_hi - a_lo) >= 0.0 {
                phi_rec = phi_hi;
                a_rec = a_hi;
                a_hi = a_lo;
                phi_hi = phi_lo;
            } else {
                phi_rec = phi_lo;
                a_rec = a_lo;
            }
            a_lo = a_j;
            phi_lo = phi_aj;
            derphi_lo = derphi_aj;
        }
        i += 1;
        if i > 10 {
            return Ok(None);
        }
    }
}

/// `Some(x)` when every intermediate was finite (numpy raises on division by zero, overflow
/// and invalid operations there, and scipy returns `None`).
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// scipy's `_cubicmin`: the minimiser of the cubic through `(a, fa)`, `(b, fb)`, `(c, fc)` with
/// slope `fpa` at `a`.
fn cubicmin(a: f64, fa: f64, fpa: f64, b: f64, fb: f64, c: f64, fc: f64) -> Option<f64> {
    let cc = fpa;
    let db = finite(b - a)?;
    let dc = finite(c - a)?;
    let denom = finite(finite(finite(db * dc)?.powi(2))? * finite(db - dc)?)?;
    let v0 = finite(finite(fb - fa)? - finite(cc * db)?)?;
    let v1 = finite(finite(fc - fa)? - finite(cc * dc)?)?;
    let a_ = finite(finite(finite(dc * dc)? * v0)? + finite(finite(-(db * db))? * v1)?)?;
    let b_ = finite(
        finite(finite(-finite(dc * dc * dc)?)? * v0)? + finite(finite(db * db * db)? * v1)?,
    )?;
    if denom == 0.0 {
        return None;
    }
    let a_ = finite(a_ / denom)?;
    let b_ = finite(b_ / denom)?;
    let radical = finite(b_ * b_ - finite(3.0 * a_ * cc)?)?;
    if radical < 0.0 || a_ == 0.0 {
        return None;
    }
    finite(a + finite((-b_ + radical.sqrt()) / (3.0 * a_))?)
}

/// scipy's `_quadmin`: the minimiser of the parabola through `(a, fa)`, `(b, fb)` with slope
/// `fpa` at `a`.
fn quadmin(a: f64, fa: f64, fpa: f64, b: f64, fb: f64) -> Option<f64> {
    let db = finite(b - a)?;
    let dd = finite(db * db)?;
    if dd == 0.0 {
        return None;
    }
    let bb = finite(finite(finite(fb - fa)? - finite(fpa * db)?)? / dd)?;
    if bb == 0.0 {
        return None;
    }
    finite(a - finite(fpa / finite(2.0 * bb)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::FeatureStats;

    fn distinct(values: &[f64]) -> (FeatureStats, Distinct) {
        let mut sorted = Vec::new();
        let s = FeatureStats::compute(values, 0.05, &mut sorted);
        (s, Distinct::from_sorted(&sorted, &s))
    }

    #[test]
    fn stops_inside_the_tolerance_band() {
        let (s, d) = distinct(&[0.0, 0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0]);
        for target in [0.0, 0.5, 2.0, 6.0, 12.9, 13.0] {
            let t = (target - s.mean) / s.std;
            let out = bfgs(&d, t, 1e-4);
            assert!(out.converged, "{target}");
            let r = d.residual(out.xi, t);
            assert!(r * r < 1e-4, "{target}: {out:?}");
        }
    }

    #[test]
    fn an_unreachable_target_is_not_converged_and_keeps_zero() {
        let (s, d) = distinct(&[0.0, 1.0, 2.0]);
        let out = bfgs(&d, (5.0 - s.mean) / s.std, 1e-4);
        assert_eq!((out.xi, out.converged), (0.0, false));
    }

    #[test]
    fn interpolation_helpers() {
        // The parabola 1 + (x - 2)^2 through a = 0 (f = 5, f' = -4) and b = 3 (f = 2).
        assert!((quadmin(0.0, 5.0, -4.0, 3.0, 2.0).unwrap() - 2.0).abs() < 1e-12);
        // The cubic x^3 - 3x: at 0 f = 0, f' = -3; f(2) = 2, f(-1) = 2; minimum at 1.
        assert!((cubicmin(0.0, 0.0, -3.0, 2.0, 2.0, -1.0, 2.0).unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(quadmin(1.0, 0.0, 1.0, 1.0, 0.0), None);
        assert_eq!(sign(0.0), 0.0);
        assert_eq!(py_min(1.0, f64::NAN), 1.0);
    }
}
