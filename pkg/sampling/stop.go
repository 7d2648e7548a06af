package sampling

import "strings"

// Stopper finds stop strings in streamed text, even when one is split
// across tokens: it holds back any tail that could still become a stop
// string. Not safe for concurrent use.
type Stopper struct {
	stops   []string
	held    string
	matched string
}

// NewStopper watches for the given stop strings (empty ones are ignored).
func NewStopper(stops []string) *Stopper {
	s := &Stopper{}
	for _, x := range stops {
		if x != "" {
			s.stops = append(s.stops, x)
		}
	}
	return s
}

// Push adds text and returns what can be emitted now. stopped reports that
// a stop string was found: emit is the text before it, and nothing after
// it is to be emitted.
func (s *Stopper) Push(text string) (emit string, stopped bool) {
	buf := s.held + text
	first := -1
	for _, x := range s.stops {
		if i := strings.Index(buf, x); i >= 0 && (first < 0 || i < first) {
			first, s.matched = i, x
		}
	}
	if first >= 0 {
		s.held = ""
		return buf[:first], true
	}
	hold := 0
	for _, x := range s.stops {
		for k := min(len(x)-1, len(buf)); k > hold; k-- {
			if strings.HasSuffix(buf, x[:k]) {
				hold = k
				break
			}
		}
	}
	s.held = buf[len(buf)-hold:]
	return buf[:len(buf)-hold], false
}

// Matched is the stop string Push found, or "" while none was.
func (s *Stopper) Matched() string { return s.matched }

// Flush returns the text held back, at the end of generation.
func (s *Stopper) Flush() string {
	h := s.held
	s.held = ""
	return h
}
