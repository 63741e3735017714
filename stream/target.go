package stream

// Target is the address the channel was made for, as the user gave it.
func (c *Conn) Target() string { return c.target }
