package token_test

import (
	"fmt"

	"github.com/deskd/deskd/internal/token"
)

func Example() {
	s, err := token.New([]byte("use-a-long-random-secret"), "desk.example.com")
	if err != nil {
		panic(err)
	}
	id := s.MessageID(1042, "77") // outbox row 77: a retry reuses the same ID
	fmt.Println(id)
	fmt.Println(s.TicketFromMessageID("<" + id + ">"))

	addr := s.ReplyAddress("support@example.com", 1042)
	fmt.Println(addr)
	fmt.Println(s.TicketFromAddress("SERVICE DESK <" + addr + ">"))
	// Output:
	// t.sy-zam2jpon5lsbfepn.77@desk.example.com
	// 1042 <nil>
	// support+t-sy-zam2jpon5lsbfepn@example.com
	// 1042 <nil>
}
