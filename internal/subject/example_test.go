package subject_test

import (
	"fmt"

	"github.com/deskd/deskd/internal/subject"
)

func ExampleOutbound() {
	fmt.Println(subject.Outbound("SD-1042", "AW: Re: [SD-1042] VPN down"))
	fmt.Println(subject.Outbound("SD-1042", "VPN down"))
	// Output:
	// [SD-1042] VPN down
	// [SD-1042] VPN down
}

func ExampleFindKey() {
	prefixes := []string{"SD", "CHG"}
	fmt.Println(subject.FindKey("RE: [External] Re: VPN down [sd-1042]", prefixes))
	fmt.Println(subject.FindKey("Antw: CHG-77: change window", prefixes))
	fmt.Println(subject.FindKey("Re: like SD-1042 but new", prefixes))
	// Output:
	// SD-1042 true
	// CHG-77 true
	//  false
}

func ExampleStripReplyPrefixes() {
	fmt.Println(subject.StripReplyPrefixes("[External] RE: AW: Re[2]: 回复：VPN down"))
	// Output: VPN down
}
