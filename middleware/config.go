package middleware

import (
	"strings"
	"time"

	"github.com/msgkit/msgkit/sdk"
)

// Settings read by FromConfig from the config's middleware: section (or
// MESSAGING_MW_<NAME>). Each feature is off unless its first key is set.
var configKeys = []string{
	"retry_attempts", "retry_delay", "retry_max_delay", "retry_max_duration",
	"timeout",
	"bulkhead", "bulkhead_wait",
	"rate_limit",
	"breaker_failures", "breaker_window", "breaker_delay", "breaker_successes",
	"dead_letter", "dead_letter_after", "dead_letter_suffix",
}

// tuning lists, by the key that turns a feature on, the keys that only
// tune it: set without that key they would do nothing.
var tuning = []struct {
	on   string
	keys []string
}{
	{"retry_attempts", []string{"retry_delay", "retry_max_delay", "retry_max_duration"}},
	{"bulkhead", []string{"bulkhead_wait"}},
	{"breaker_failures", []string{"breaker_window", "breaker_delay", "breaker_successes"}},
	{"dead_letter", []string{"dead_letter_after", "dead_letter_suffix"}},
}

func init() {
	sdk.RegisterConfigCheck("middleware", func(cfg sdk.Config) error { return checkSection(cfg) })
}

// checkSection refuses unknown keys, and a tuning key whose feature is not
// turned on at all. A feature turned off on purpose (retry_attempts: 0,
// dead_letter: false, as an environment variable may set over a file)
// keeps its tuning keys.
func checkSection(cfg sdk.Config) error {
	s := cfg.MiddlewareSection()
	if err := s.Check(configKeys...); err != nil {
		return err
	}
	for _, f := range tuning {
		if s.Has(f.on) {
			continue
		}
		for _, k := range f.keys {
			if s.Has(k) {
				return cfg.Invalid("middleware."+k, nil, "does nothing without %s, which turns the feature on: set %s, or remove %s", f.on, f.on, k)
			}
		}
	}
	return nil
}

// Deps are what some middleware needs besides settings.
type Deps struct {
	// Publisher sends dead letters; required with dead_letter: true.
	Publisher sdk.Publisher
	// Observability traces, counts and logs; nil for none.
	Observability *Observability
	// OnBreakerStateChange is told of every transition of the configured
	// breakers: which ("handler" or "publish"), from and to ("closed",
	// "open", "half-open"). Nil for none.
	OnBreakerStateChange func(breaker, from, to string)
}

// Stack is the middleware configured for a service.
type Stack struct {
	handler        []Middleware
	handlerBreaker *Breaker
	publishBreaker *Breaker
	obs            *Observability
}

// FromConfig builds the stack the config's middleware: section describes:
//
//	middleware:
//	  retry_attempts: 3        # in-process tries; retry_delay 100ms, retry_max_delay 5s, retry_max_duration
//	  timeout: 30s             # per handler
//	  bulkhead: 10             # concurrent handlers (bulkhead_wait 10s)
//	  rate_limit: 100          # handlers started per second
//	  breaker_failures: 5      # consecutive failures (of breaker_window, if set) that open the breaker;
//	                           # breaker_delay 10s, breaker_successes 1; also guards publishing
//	  dead_letter: true        # dead_letter_after 3 deliveries, to <topic> + dead_letter_suffix (.dlq)
//
// The handler stack runs, outermost first: observability, dead-letter,
// breaker, bulkhead, rate limit, retry, timeout.
func FromConfig(cfg sdk.Config, deps Deps) (*Stack, error) {
	if err := checkSection(cfg); err != nil {
		return nil, err
	}
	s := cfg.MiddlewareSection()
	st := &Stack{obs: deps.Observability}
	if st.obs != nil {
		st.handler = append(st.handler, st.obs.Handler())
	}
	positive := func(key string, n int) error {
		if n < 0 {
			return cfg.Invalid("middleware."+key, nil, "must not be negative, got %d", n)
		}
		return nil
	}
	duration := func(key string, def time.Duration) (time.Duration, error) {
		d, err := s.Duration(key, def)
		if err == nil && d < 0 {
			err = cfg.Invalid("middleware."+key, nil, "must not be negative, got %v", d)
		}
		return d, err
	}
	var err error

	if on, err := s.Bool("dead_letter", false); err != nil {
		return nil, err
	} else if on {
		if deps.Publisher == nil {
			return nil, cfg.Invalid("middleware.dead_letter", nil, "dead-lettering needs a publisher: pass middleware.Deps{Publisher: client}")
		}
		after, err := s.Int("dead_letter_after", 3)
		if err != nil {
			return nil, err
		}
		if after < 1 {
			return nil, cfg.Invalid("middleware.dead_letter_after", nil, "must be at least 1 delivery, got %d", after)
		}
		suffix := s.String("dead_letter_suffix", ".dlq")
		if strings.TrimSpace(suffix) == "" {
			return nil, cfg.Invalid("middleware.dead_letter_suffix", nil, "is empty: dead letters would go back to the topic they failed on, to fail again; leave it unset for .dlq")
		}
		dl := DeadLetterConfig{Publisher: deps.Publisher, MaxDeliveries: after, Topic: func(t string) string { return t + suffix }}
		if st.obs != nil {
			dl.OnDeadLetter = st.obs.OnDeadLetter
		}
		st.handler = append(st.handler, DeadLetter(dl))
	}

	failures, err := s.Int("breaker_failures", 0)
	if err == nil {
		err = positive("breaker_failures", failures)
	}
	if err != nil {
		return nil, err
	}
	if failures > 0 {
		bc := BreakerConfig{FailureThreshold: uint(failures)}
		window, err := s.Int("breaker_window", 0)
		if err == nil {
			err = positive("breaker_window", window)
		}
		if err != nil {
			return nil, err
		}
		bc.FailureWindow = uint(window)
		if bc.Delay, err = duration("breaker_delay", 10*time.Second); err != nil {
			return nil, err
		}
		succ, err := s.Int("breaker_successes", 1)
		if err != nil {
			return nil, err
		}
		if succ < 1 {
			return nil, cfg.Invalid("middleware.breaker_successes", nil, "must be at least 1 (the successful tries that close a half-open breaker), got %d", succ)
		}
		bc.SuccessThreshold = uint(succ)
		handlerCfg, publishCfg := bc, bc
		handlerCfg.OnStateChange = stateListeners(st.obs, deps.OnBreakerStateChange, "handler")
		publishCfg.OnStateChange = stateListeners(st.obs, deps.OnBreakerStateChange, "publish")
		st.handlerBreaker, st.publishBreaker = NewBreaker(handlerCfg), NewBreaker(publishCfg)
		st.handler = append(st.handler, st.handlerBreaker.Handler())
	}

	if n, err := s.Int("bulkhead", 0); err != nil {
		return nil, err
	} else if err := positive("bulkhead", n); err != nil {
		return nil, err
	} else if n > 0 {
		wait, err := duration("bulkhead_wait", 10*time.Second)
		if err != nil {
			return nil, err
		}
		st.handler = append(st.handler, Bulkhead(n, wait))
	}

	if n, err := s.Int("rate_limit", 0); err != nil {
		return nil, err
	} else if err := positive("rate_limit", n); err != nil {
		return nil, err
	} else if n > 0 {
		st.handler = append(st.handler, RateLimit(n))
	}

	if n, err := s.Int("retry_attempts", 0); err != nil {
		return nil, err
	} else if err := positive("retry_attempts", n); err != nil {
		return nil, err
	} else if n > 0 {
		rc := RetryConfig{MaxAttempts: n}
		if rc.Delay, err = duration("retry_delay", 100*time.Millisecond); err != nil {
			return nil, err
		}
		if rc.MaxDelay, err = duration("retry_max_delay", max(5*time.Second, rc.Delay)); err != nil {
			return nil, err
		}
		if rc.MaxDelay < rc.Delay {
			return nil, cfg.Invalid("middleware.retry_max_delay", nil, "%v is below retry_delay %v; it is the longest the delay grows to", rc.MaxDelay, rc.Delay)
		}
		if rc.MaxDuration, err = duration("retry_max_duration", 0); err != nil {
			return nil, err
		}
		if st.obs != nil {
			rc.OnRetry = st.obs.OnRetry
		}
		st.handler = append(st.handler, Retry(rc))
	}

	if d, err := s.Duration("timeout", 0); err != nil {
		return nil, err
	} else if d < 0 {
		return nil, cfg.Invalid("middleware.timeout", nil, "must not be negative, got %v", d)
	} else if d > 0 {
		st.handler = append(st.handler, Timeout(d))
	}
	return st, nil
}

// Handler wraps h in the configured stack.
func (s *Stack) Handler(h sdk.Handler) sdk.Handler { return Chain(h, s.handler...) }

// Publisher wraps p in the configured publisher decorators: the publish
// breaker (fail fast while the broker is down) and observability.
func (s *Stack) Publisher(p sdk.Publisher) sdk.Publisher {
	if s.publishBreaker != nil {
		p = s.publishBreaker.Publisher(p)
	}
	if s.obs != nil {
		p = s.obs.Publisher(p)
	}
	return p
}

// HandlerBreaker is the breaker around handlers, or nil when none is
// configured; PublishBreaker the one around publishing.
func (s *Stack) HandlerBreaker() *Breaker { return s.handlerBreaker }

// PublishBreaker is the breaker around publishing, or nil.
func (s *Stack) PublishBreaker() *Breaker { return s.publishBreaker }

// stateListeners tells observability and the service's own listener of a
// breaker's transitions.
func stateListeners(obs *Observability, own func(breaker, from, to string), breaker string) func(from, to string) {
	var fs []func(from, to string)
	if obs != nil {
		fs = append(fs, obs.OnBreakerStateChange(breaker))
	}
	if own != nil {
		fs = append(fs, func(from, to string) { own(breaker, from, to) })
	}
	if len(fs) == 0 {
		return nil
	}
	return func(from, to string) {
		for _, f := range fs {
			f(from, to)
		}
	}
}
